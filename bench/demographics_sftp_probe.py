"""Probe for the `demographics_100k_sftp_s` benchmark: the demographics CSV of N students
streamed to an SFTP server on loopback.

`run(n)` expects Django to be set up against the benchmark's own database. It tops the
database up to N students named `DG000001`... (1 to 2 guardians each, bulk-created once),
then times, in the same run:

* `value`: `export_demographics` end to end (database -> CSV -> SFTP, pinned host key);
* `csv_only_s`: building the same CSV without sending it;
* `sftp_floor_s`: uploading the same bytes, already in memory, over the same SFTP server;

and reports `ratio` = value / max(csv_only_s, sftp_floor_s), which drifts less than the
absolute time on a shared machine. The SFTP server is the test suite's paramiko server,
running in this process (so the figure includes the server's share of the CPU).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from apps.students.models import Guardian, School, Student
from apps.vendors.demographics import demographics_csv_chunks, export_demographics
from apps.vendors.transfer import TransferTarget, upload_stream
from tests.vendors.servers import PASSWORD, USERNAME, run_sftp_server

PREFIX = "DG"
TARGET_S = 15.0


def _ensure_students(n: int) -> None:
    have = Student.objects.filter(student_number__startswith=PREFIX).count()
    if have >= n:
        return
    school, _ = School.objects.get_or_create(code="BENCH", defaults={"name": "Bench Academy"})
    link = Guardian.students.through
    batch = 5000
    with transaction.atomic():
        for start in range(have, n, batch):
            numbers = range(start, min(start + batch, n))
            students = Student.objects.bulk_create(
                Student(
                    student_number=f"{PREFIX}{i:06}",
                    first_name=f"First{i}",
                    last_name=f"Last{i}",
                    grade=str(i % 12 + 1),
                    school=school,
                    active=i % 20 != 0,
                )
                for i in numbers
            )
            guardians = Guardian.objects.bulk_create(
                Guardian(
                    first_name=f"Parent{i}",
                    last_name=f"Last{i}",
                    email=f"parent{i}@example.org",
                    phone=f"555-{i % 10000:04}",
                    address=f"{i} Main Street, Springfield",
                )
                for i in range(start, start + 2 * len(students))
            )
            links = [link(student=s, guardian=guardians[2 * k]) for k, s in enumerate(students)]
            # Two guardians for every other student.
            links += [
                link(student=s, guardian=guardians[2 * k + 1])
                for k, s in enumerate(students)
                if k % 2 == 0
            ]
            link.objects.bulk_create(links)
    if connection.vendor == "postgresql":
        # Fresh bulk loads have no planner statistics yet; without them PostgreSQL picks
        # a sort of the whole guardian table for every chunk (measured: 6.5 s vs 4.4 s).
        with connection.cursor() as cursor:
            for model in (Student, Guardian, link):
                cursor.execute(f"ANALYZE {model._meta.db_table}")


def run(n_students: int = 100_000) -> dict[str, Any]:
    _ensure_students(n_students)
    students = Student.objects.filter(
        student_number__gte=f"{PREFIX}{0:06}", student_number__lt=f"{PREFIX}{n_students:06}"
    )

    started = time.monotonic()
    csv_bytes = b"".join(demographics_csv_chunks(students_qs=students))
    csv_only_s = time.monotonic() - started

    with tempfile.TemporaryDirectory() as tmp, run_sftp_server(Path(tmp) / "root") as server:
        target = TransferTarget(
            protocol="sftp",
            host=server.host,
            port=server.port,
            username=USERNAME,
            password=PASSWORD,
            host_key=server.host_key,
            timeout=30,
        )
        started = time.monotonic()
        step = 256 * 1024
        chunks = (csv_bytes[i : i + step] for i in range(0, len(csv_bytes), step))
        upload_stream(target, "floor.csv", chunks)
        sftp_floor_s = time.monotonic() - started

        started = time.monotonic()
        result = export_demographics(
            target=target, remote_name="demographics_bench.csv", students_qs=students
        )
        value = time.monotonic() - started
        assert (server.root / "demographics_bench.csv").stat().st_size == len(csv_bytes)

    return {
        "name": "demographics_100k_sftp_s",
        "value": round(value, 3),
        "unit": "s",
        "target": TARGET_S,
        "ok": value <= TARGET_S,
        "n": result.rows,
        "bytes": result.bytes_sent,
        "csv_only_s": round(csv_only_s, 3),
        "sftp_floor_s": round(sftp_floor_s, 3),
        "ratio": round(value / max(csv_only_s, sftp_floor_s, 1e-9), 2),
    }
