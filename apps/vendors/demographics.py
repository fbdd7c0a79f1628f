"""The nightly demographics file: every student and up to two guardians, as CSV, to the vendor.

PaySchools and Community Pass both take a demographics CSV over FTP, FTPS or SFTP so that
parents find their children when they sign up at the vendor. The file is streamed from the
database to the vendor's server: students are read in chunks with their guardians
prefetched per chunk (a fixed number of queries per chunk, never one per student), each
chunk is encoded and sent, and nothing holds the whole file, so 100,000 students take the
same memory as 1,000. `apps.vendors.transfer.upload_stream` writes it under a temporary
name and renames it into place, so the vendor never reads half a file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from apps.students.models import Guardian, Student
from apps.vendors.transfer import TransferTarget, upload_stream

GUARDIANS_PER_ROW = 2
_GUARDIAN_FIELDS = ("first_name", "last_name", "email", "phone")

DEMOGRAPHICS_COLUMNS: tuple[str, ...] = (
    "student_id",
    "first_name",
    "last_name",
    "grade",
    "school_code",
    "school_name",
    "active",
    *(f"guardian{n}_{name}" for n in range(1, GUARDIANS_PER_ROW + 1) for name in _GUARDIAN_FIELDS),
    "guardian1_address",
)

DEFAULT_CHUNK_ROWS = 2000


@dataclass(frozen=True)
class ExportResult:
    rows: int  # students written (the header is not counted)
    bytes_sent: int
    remote_name: str
    remote_path: str
    elapsed_s: float


def _students(students_qs: QuerySet[Student] | None) -> QuerySet[Student]:
    qs = Student.objects.all() if students_qs is None else students_qs
    if not qs.query.order_by:
        # A stable order (by the unique, indexed student number) rather than the model's
        # name ordering: cheaper to sort, and the same file for the same data.
        qs = qs.order_by("student_number")
    guardians = Guardian.objects.only("id", *_GUARDIAN_FIELDS, "address").order_by("pk")
    return (
        qs.select_related("school")
        .only(
            "id",
            "student_number",
            "first_name",
            "last_name",
            "grade",
            "active",
            "school__code",
            "school__name",
        )
        # Guardian 1 is the earliest-created guardian linked to the student. With
        # iterator(chunk_size=...) Django runs this prefetch once per chunk of students.
        .prefetch_related(Prefetch("guardians", queryset=guardians, to_attr="_demog_guardians"))
    )


def demographics_rows(
    *, students_qs: QuerySet[Student] | None = None, chunk_size: int = DEFAULT_CHUNK_ROWS
) -> Iterator[tuple[str, ...]]:
    """One tuple of strings per student, in `DEMOGRAPHICS_COLUMNS` order (no header).

    `students_qs` narrows the students (default: all, active and inactive; the `active`
    column tells the vendor which is which)."""
    blank_guardian = ("",) * len(_GUARDIAN_FIELDS)
    for student in _students(students_qs).iterator(chunk_size=chunk_size):
        guardians: list[Guardian] = student._demog_guardians  # type: ignore[attr-defined]
        guardian_cells: list[str] = []
        for guardian in guardians[:GUARDIANS_PER_ROW]:
            guardian_cells.extend(getattr(guardian, name) or "" for name in _GUARDIAN_FIELDS)
        guardian_cells.extend(
            blank_guardian * (GUARDIANS_PER_ROW - min(len(guardians), GUARDIANS_PER_ROW))
        )
        yield (
            student.student_number,
            student.first_name,
            student.last_name,
            student.grade,
            student.school.code,
            student.school.name,
            "Y" if student.active else "N",
            *guardian_cells,
            (guardians[0].address or "") if guardians else "",
        )


def _csv_chunks(rows: Iterable[Sequence[str]], chunk_rows: int) -> Iterator[bytes]:
    # The csv module's defaults: minimal quoting (commas, quotes, newlines inside a value
    # are quoted) and "\r\n" line endings, which is what the vendors' importers expect.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(DEMOGRAPHICS_COLUMNS)
    pending = 0
    for row in rows:
        writer.writerow(row)
        pending += 1
        if pending >= chunk_rows:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    tail = buffer.getvalue()
    if tail:
        yield tail.encode("utf-8")


def demographics_csv_chunks(
    *, students_qs: QuerySet[Student] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[bytes]:
    """The demographics CSV (UTF-8, header first) as byte chunks of `chunk_rows` rows."""
    return _csv_chunks(
        demographics_rows(students_qs=students_qs, chunk_size=chunk_rows), chunk_rows
    )


def default_remote_name() -> str:
    # The district's calendar date (TIME_ZONE), not UTC's: a run at 8 p.m. in New York
    # names today's file, not tomorrow's.
    return f"demographics_{timezone.localdate():%Y%m%d}.csv"


def export_demographics(
    *,
    target: TransferTarget,
    remote_name: str | None = None,
    students_qs: QuerySet[Student] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ExportResult:
    """Stream the demographics CSV to `target` as `remote_name`
    (default `demographics_YYYYMMDD.csv`). Raises `TransferError` when the upload fails."""
    name = remote_name or default_remote_name()
    count = 0

    def counted() -> Iterator[tuple[str, ...]]:
        nonlocal count
        for row in demographics_rows(students_qs=students_qs, chunk_size=chunk_rows):
            count += 1
            yield row

    result = upload_stream(target, name, _csv_chunks(counted(), chunk_rows))
    return ExportResult(
        rows=count,
        bytes_sent=result.bytes_sent,
        remote_name=name,
        remote_path=result.remote_path,
        elapsed_s=result.elapsed_s,
    )
