"""The roster import pages: district admins upload, read the preview, confirm, see the result."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.roster.models import RosterImport
from apps.students.models import Student
from tests.roster.files import Person, family, oneroster_files, zip_bytes

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _upload(client: Client, data: bytes, capture: Any, name: str = "roster.zip") -> Any:
    with capture(execute=True):
        response = client.post(
            "/admin/roster/rosterimport/add/",
            {"file": SimpleUploadedFile(name, data, content_type="application/zip")},
        )
    assert response.status_code == 302
    # The preview is built by a task queued on commit; the page shows it once it ran.
    return client.get(response["Location"])


def test_upload_preview_confirm_result(
    district_admin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = _client(district_admin)
    page = _upload(
        client, zip_bytes(oneroster_files(family(3))), django_capture_on_commit_callbacks
    )
    text = page.content.decode()
    assert "Preview ready" in text and "nothing has changed yet" in text
    assert "Confirm and apply" in text
    assert Student.objects.count() == 0
    job = RosterImport.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/roster/rosterimport/{job.pk}/confirm/")
    done = client.get(f"/admin/roster/rosterimport/{job.pk}/change/")
    assert "The roster was applied: 3 students added" in done.content.decode()
    assert Student.objects.count() == 3
    # Confirming twice applies nothing more.
    again = client.post(f"/admin/roster/rosterimport/{job.pk}/confirm/", follow=True)
    assert "already confirmed" in again.content.decode()


def test_bad_rows_are_listed_on_the_preview(
    district_admin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    people = [*family(2), Person("bad", "No", "Grade", number="9", grade="")]
    page = _upload(
        _client(district_admin),
        zip_bytes(oneroster_files(people)),
        django_capture_on_commit_callbacks,
    )
    text = page.content.decode()
    assert "Rows refused" in text and "the student has no grade" in text


def test_unreadable_file_says_why(
    district_admin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    page = _upload(
        _client(district_admin),
        b"\xff\xfe not a roster",
        django_capture_on_commit_callbacks,
        name="roster.csv",
    )
    assert "could not be read, so nothing was applied" in page.content.decode()
    assert "not UTF-8" in page.content.decode()


def test_guard_needs_the_override(
    district_admin: Any, django_capture_on_commit_callbacks: Any, tmp_path: Any
) -> None:
    from django.core.management import call_command

    from tests.roster.files import write_folder

    call_command("roster_import", str(write_folder(tmp_path / "r", oneroster_files(family(40)))))
    client = _client(district_admin)
    page = _upload(
        client, zip_bytes(oneroster_files(family(20))), django_capture_on_commit_callbacks
    )
    assert "Held by the deactivation guard" in page.content.decode()
    job = RosterImport.objects.get()
    refused = client.post(f"/admin/roster/rosterimport/{job.pk}/confirm/", follow=True)
    assert "nothing was changed" in refused.content.decode()
    assert Student.objects.filter(active=True).count() == 40
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/admin/roster/rosterimport/{job.pk}/confirm/", {"allow_deactivate": "1"}, follow=True
        )
    assert Student.objects.filter(active=True).count() == 20


def test_only_district_admins_import(clerk: Any, support_user: Any) -> None:
    for user in (clerk, support_user):
        client = _client(user)
        assert client.get("/admin/roster/rosterimport/add/").status_code == 403
        assert client.get("/admin/roster/rosterimport/").status_code == 403
