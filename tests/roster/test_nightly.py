"""The nightly roster fetch from the SIS's SFTP directory (a real SFTP server on loopback):
applied by itself within the guard, held beyond it, refused for a wrong host key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from apps.roster.models import RosterImport, RosterSource
from apps.roster.nightly import roster_fetch_nightly, roster_source_password_set
from apps.students.models import Student
from tests.roster.files import family, oneroster_files, write_folder, zip_bytes
from tests.vendors.servers import (
    PASSWORD,
    USERNAME,
    ServerInfo,
    fixture_sftp_server,
    generate_ed25519_key,
    public_key_line,
)

pytestmark = pytest.mark.django_db
sftp_server = fixture_sftp_server


def _source(server: ServerInfo, *, host_key: str | None = None) -> RosterSource:
    (server.root / "exports").mkdir(exist_ok=True)
    source = RosterSource.objects.create(
        enabled=True,
        host=server.host,
        port=server.port,
        username=USERNAME,
        directory="exports",
        host_key=host_key or server.host_key,
    )
    roster_source_password_set(source=source, password=PASSWORD)
    return source


def _drop(server: ServerInfo, name: str, data: bytes, mtime: int) -> None:
    path = server.root / "exports" / name
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def test_the_newest_file_is_fetched_and_applied_within_the_guard(
    sftp_server: ServerInfo, django_capture_on_commit_callbacks: Any
) -> None:
    source = _source(sftp_server)
    assert PASSWORD not in source.secrets  # encrypted at rest
    _drop(sftp_server, "roster-old.zip", zip_bytes(oneroster_files(family(2))), 1_700_000_000)
    _drop(sftp_server, "roster-new.zip", zip_bytes(oneroster_files(family(3))), 1_700_090_000)
    _drop(sftp_server, "roster-next.zip.part", b"half a file", 1_700_099_999)
    with django_capture_on_commit_callbacks(execute=True):
        job = roster_fetch_nightly()
    assert job is not None
    assert (job.file_name, job.source, job.state) == ("roster-new.zip", "sftp", "done")
    assert Student.objects.count() == 3


def test_beyond_the_guard_the_nightly_run_waits_for_staff(
    sftp_server: ServerInfo, tmp_path: Path
) -> None:
    call_command("roster_import", str(write_folder(tmp_path / "r", oneroster_files(family(40)))))
    _source(sftp_server)
    _drop(sftp_server, "cut.zip", zip_bytes(oneroster_files(family(10))), 1_700_000_000)
    job = roster_fetch_nightly()
    assert job is not None and job.state == RosterImport.State.HELD
    assert Student.objects.filter(active=True).count() == 40


def test_a_server_with_another_host_key_is_refused_and_the_run_recorded(
    sftp_server: ServerInfo,
) -> None:
    _source(sftp_server, host_key=public_key_line(generate_ed25519_key()))
    _drop(sftp_server, "roster.zip", zip_bytes(oneroster_files(family(2))), 1_700_000_000)
    job = roster_fetch_nightly()
    assert job is not None and job.state == RosterImport.State.FAILED
    assert "host key does not match" in job.error
    assert Student.objects.count() == 0


def test_the_nightly_task_has_its_beat_row() -> None:
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="Roster: nightly SFTP fetch")
    assert task.task == "apps.roster.tasks.roster_nightly" and task.enabled
