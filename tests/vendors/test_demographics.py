"""The demographics CSV: its columns, its rows, its query count, and its trip to the vendor."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from apps.students.models import Guardian, School, Student
from apps.vendors.demographics import (
    DEMOGRAPHICS_COLUMNS,
    default_remote_name,
    demographics_csv_chunks,
    demographics_rows,
    export_demographics,
)
from apps.vendors.transfer import TransferTarget
from tests.vendors.servers import (  # noqa: F401 - a fixture, registered by being imported
    PASSWORD,
    USERNAME,
    ServerInfo,
    fixture_sftp_server,
)

EXPECTED_HEADER = [
    "student_id",
    "first_name",
    "last_name",
    "grade",
    "school_code",
    "school_name",
    "active",
    "guardian1_first_name",
    "guardian1_last_name",
    "guardian1_email",
    "guardian1_phone",
    "guardian2_first_name",
    "guardian2_last_name",
    "guardian2_email",
    "guardian2_phone",
    "guardian1_address",
]


def _parse(chunks: list[bytes]) -> list[list[str]]:
    text = b"".join(chunks).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.fixture
def family(db: None) -> dict[str, Student]:
    school = School.objects.create(code="LHS", name='Lincoln High, "North" campus')
    nobody = Student.objects.create(
        student_number="S003", first_name="Zoë", last_name="Ørsted", grade="K", school=school
    )
    one = Student.objects.create(
        student_number="S001",
        first_name="Ada",
        last_name="Lovelace",
        grade="9",
        school=school,
        active=False,
    )
    two = Student.objects.create(
        student_number="S002", first_name="Alan", last_name="Turing", grade="12", school=school
    )
    mother = Guardian.objects.create(
        first_name="Ethel",
        last_name="Turing",
        email="ethel@example.org",
        phone="555-0100",
        address="2 Warrington Crescent\nLondon",
    )
    father = Guardian.objects.create(
        first_name="Julius", last_name="Turing", email="", phone="555-0101", address="elsewhere"
    )
    third = Guardian.objects.create(first_name="Sara", last_name="Turing")
    annabella = Guardian.objects.create(
        first_name="Annabella", last_name="Byron", email="ab@example.org", address="Seaham"
    )
    mother.students.add(two)
    father.students.add(two)
    third.students.add(two)  # a third guardian is not in the file: two at most
    annabella.students.add(one)
    return {"none": nobody, "one": one, "two": two}


def test_header_and_rows_for_zero_one_and_two_guardians(family: dict[str, Student]) -> None:
    rows = _parse(list(demographics_csv_chunks()))

    assert rows[0] == EXPECTED_HEADER
    assert list(DEMOGRAPHICS_COLUMNS) == EXPECTED_HEADER
    school = 'Lincoln High, "North" campus'
    assert rows[1:] == [
        # ordered by student number
        ["S001", "Ada", "Lovelace", "9", "LHS", school, "N",
         "Annabella", "Byron", "ab@example.org", "", "", "", "", "", "Seaham"],
        ["S002", "Alan", "Turing", "12", "LHS", school, "Y",
         "Ethel", "Turing", "ethel@example.org", "555-0100",
         "Julius", "Turing", "", "555-0101", "2 Warrington Crescent\nLondon"],
        ["S003", "Zoë", "Ørsted", "K", "LHS", school, "Y",
         "", "", "", "", "", "", "", "", ""],
    ]  # fmt: skip


def test_bytes_are_utf8_with_crlf_and_quoting(family: dict[str, Student]) -> None:
    raw = b"".join(demographics_csv_chunks())

    assert raw.startswith(b"student_id,first_name,last_name,grade,")
    assert raw.endswith(b"\r\n")
    assert "Zoë,Ørsted".encode() in raw
    # A comma or a quote inside a value is quoted; a newline inside a value stays in quotes.
    assert b'"Lincoln High, ""North"" campus"' in raw
    assert b'"2 Warrington Crescent\nLondon"' in raw
    assert raw.count(b"\r\n") == 4  # header + 3 students


def test_rows_can_be_narrowed(family: dict[str, Student]) -> None:
    rows = list(demographics_rows(students_qs=Student.objects.filter(active=True)))
    assert [row[0] for row in rows] == ["S002", "S003"]
    assert all(len(row) == len(DEMOGRAPHICS_COLUMNS) for row in rows)


def test_no_students_is_a_header_only_file(db: None) -> None:
    assert _parse(list(demographics_csv_chunks())) == [EXPECTED_HEADER]


def test_queries_do_not_grow_with_students(
    db: None, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    school = School.objects.create(code="E1", name="East Elementary")
    students = Student.objects.bulk_create(
        Student(
            student_number=f"N{i:05}",
            first_name=f"First{i}",
            last_name=f"Last{i}",
            grade=str(i % 12 + 1),
            school=school,
        )
        for i in range(300)
    )
    guardians = Guardian.objects.bulk_create(
        Guardian(first_name=f"G{i}", last_name="Parent", email=f"g{i}@example.org")
        for i in range(600)
    )
    link = Guardian.students.through
    link.objects.bulk_create(
        [link(guardian=guardians[2 * i], student=s) for i, s in enumerate(students)]
        + [link(guardian=guardians[2 * i + 1], student=s) for i, s in enumerate(students)]
    )

    # 300 students in chunks of 100: one students query (a server-side cursor on
    # PostgreSQL, fetched chunk by chunk) plus one guardians query per chunk.
    with django_assert_max_num_queries(1 + 3):
        chunks = list(demographics_csv_chunks(chunk_rows=100))

    rows = _parse(chunks)
    assert len(rows) == 301
    assert len(chunks) == 3  # header rides with the first chunk
    assert rows[1][7:9] == ["G0", "Parent"] and rows[1][11:13] == ["G1", "Parent"]


@pytest.mark.django_db
def test_export_streams_the_file_to_the_vendor(
    family: dict[str, Student], sftp_server: ServerInfo
) -> None:
    target = TransferTarget(
        protocol="sftp",
        host=sftp_server.host,
        port=sftp_server.port,
        username=USERNAME,
        password=PASSWORD,
        host_key=sftp_server.host_key,
        timeout=5,
    )

    result = export_demographics(target=target)

    expected_name = f"demographics_{timezone.localdate():%Y%m%d}.csv"
    assert result.remote_name == expected_name
    assert result.rows == 3
    uploaded = (sftp_server.root / expected_name).read_bytes()
    assert uploaded == b"".join(demographics_csv_chunks())
    assert result.bytes_sent == len(uploaded)
    assert sorted(p.name for p in Path(sftp_server.root).iterdir()) == [expected_name]


def test_default_name_uses_the_districts_date(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 02:30 UTC on 1 March is still 28 February in New York.
    settings.TIME_ZONE = "America/New_York"
    instant = dt.datetime(2025, 3, 1, 2, 30, tzinfo=dt.UTC)
    monkeypatch.setattr(timezone, "now", lambda: instant)  # localdate() reads now()

    assert default_remote_name() == "demographics_20250228.csv"
