"""Portal invitations: a guardian the roster import gave a login sets a password through a
one-use link and sees their children."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from apps.roster.models import InvitationBatch
from apps.students.models import Guardian
from tests.roster.files import family, oneroster_files, write_folder

pytestmark = pytest.mark.django_db
LINK = re.compile(r"http://testserver(/portal/invitation/\S+/)")


def _import(tmp_path: Path, n: int = 3) -> None:
    people = family(n)
    people[-1].email = ""  # the last guardian has no email
    call_command("roster_import", str(write_folder(tmp_path / "r", oneroster_files(people))))


def _send(district_admin: Any, capture: Any) -> Client:
    client = Client()
    client.force_login(district_admin)
    with capture(execute=True):
        response = client.post("/admin/roster/invitationbatch/add/")
    assert response.status_code == 302
    return client


def test_invitations_go_to_guardians_with_a_login_and_no_password(
    tmp_path: Path, district_admin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _import(tmp_path)
    client = Client()
    client.force_login(district_admin)
    page = client.get("/admin/roster/invitationbatch/add/").content.decode()
    assert "Send 2 invitations" in page
    assert "1 guardian has no email address" in page
    _send(district_admin, django_capture_on_commit_callbacks)
    batch = InvitationBatch.objects.get()
    assert (batch.state, batch.sent, batch.total) == ("done", 2, 2)
    assert sorted(m.to[0] for m in mail.outbox) == ["parent0@example.org", "parent1@example.org"]
    progress = client.get(f"/admin/roster/invitationbatch/{batch.pk}/change/").content.decode()
    assert "2 invitations sent of 2" in progress
    # Nobody is invited twice while their link is still good.
    page = client.get("/admin/roster/invitationbatch/add/").content.decode()
    assert "Nobody is waiting for an invitation" in page
    listed = client.get("/admin/students/guardian/?has_email=no").content.decode()
    assert "Parent2" in listed and "Parent0" not in listed


def test_a_parent_sets_a_password_once_and_sees_their_children(
    tmp_path: Path, district_admin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _import(tmp_path)
    _send(district_admin, django_capture_on_commit_callbacks)
    message = next(m for m in mail.outbox if m.to == ["parent0@example.org"])
    match = LINK.search(message.body)
    assert match
    parent = Client()
    form_page = parent.get(match.group(1), follow=True)
    assert "Welcome to the parent portal" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    done = parent.post(
        set_url,
        {"new_password1": "a-long-family-pw-1", "new_password2": "a-long-family-pw-1"},
        follow=True,
    )
    assert "Kid0" in done.content.decode()
    assert Guardian.objects.get(sourced_id="par0").user.check_password("a-long-family-pw-1")
    # One use: the same link no longer works.
    again = Client().get(match.group(1), follow=True).content.decode()
    assert "This invitation no longer works" in again
