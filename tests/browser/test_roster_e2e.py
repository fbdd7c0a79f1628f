"""Roster import in a real browser: the district admin uploads a OneRoster zip, reads the
preview (changes, refused rows), confirms and reads the result. Screenshots of the preview
at 1280 and 390 px go to tests/artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apps.students.models import Guardian, Student
from tests.browser_support import axe_violations
from tests.factories import StaffFactory
from tests.roster.files import Person, family, oneroster_files, zip_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"


def test_district_admin_uploads_a_roster_reads_the_preview_and_applies_it(
    browser: Any, live_server: Any, artifacts: Path, tmp_path: Path
) -> None:
    StaffFactory(username="district", groups=["District admin"])
    people = [*family(4), Person("bad", "Ima", "Gradeless", number="77", grade="")]
    people.append(Person("cjk", "美咲", "山田", number="78"))
    roster = tmp_path / "district-roster.zip"
    roster.write_bytes(zip_bytes(oneroster_files(people)))
    base = live_server.url

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/admin/login/")
    page.get_by_label("Username").fill("district")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/admin/")

    page.get_by_role("link", name="Roster imports").first.click()
    page.get_by_role("link", name="Add roster import").click()
    page.get_by_label("Roster file").set_input_files(str(roster))
    page.get_by_role("button", name="Read the file and show the preview").click()

    page.get_by_role("heading", name="Preview: nothing has changed yet").wait_for()
    refused = page.locator("#refused-rows")
    assert "the student has no grade" in refused.inner_text()
    assert "山田" in page.content()
    assert Student.objects.count() == 0
    page.screenshot(path=str(artifacts / "roster-preview-1280.png"), full_page=True)
    assert axe_violations(page, "#content-main") == []
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts / "roster-preview-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("button", name="Confirm and apply").click()
    status = page.get_by_role("status")
    status.filter(has_text="The roster was applied").wait_for(timeout=120_000)
    assert "5 students added" in status.inner_text()
    assert Student.objects.count() == 5
    assert Guardian.objects.filter(user__isnull=False).count() == 4
    page.screenshot(path=str(artifacts / "roster-result-1280.png"), full_page=True)


def test_a_parent_follows_the_invitation_sets_a_password_and_sees_their_children(
    browser: Any, live_server: Any, artifacts: Path, tmp_path: Path
) -> None:
    from django.core import mail
    from django.core.management import call_command

    from apps.roster.invitations import invitations_start
    from tests.roster.files import write_folder

    people = family(2)
    sibling = Person("stu9", "Mei", "Family", number="100009", grade="KG", agents=["par0"])
    people.append(sibling)
    people[1].agents = ["stu0", "stu9"]
    call_command("roster_import", str(write_folder(tmp_path / "r", oneroster_files(people))))
    invitations_start(base_url=live_server.url)  # autocommit: the batch is sent at once
    body = next(m.body for m in mail.outbox if m.to == ["parent0@example.org"])
    link = next(line for line in body.splitlines() if "/portal/invitation/" in line)

    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    page.goto(link.strip())
    page.get_by_role("heading", name="Welcome to the parent portal").wait_for()
    page.get_by_label("New password", exact=True).fill("a-long-family-pw-1")
    page.get_by_label("New password confirmation").fill("a-long-family-pw-1")
    page.screenshot(path=str(artifacts / "portal-invitation-390.png"), full_page=True)
    page.get_by_role("button", name="Set my password and sign in").click()
    page.wait_for_url(f"{live_server.url}/portal/")
    text = page.content()
    assert "Kid0" in text and "Mei" in text and "Kid1" not in text
    page.screenshot(path=str(artifacts / "portal-after-invitation-390.png"), full_page=True)
