"""A student's page on the staff site in Chromium at 1366 and 390 px (issue 11): the Fees
rows fit a phone as cards, the documents shared with the guardians are listed there with
who downloaded them and a new one is shared from the page, every autocomplete box has a
name (the add-fee page's student picker too), and the page updates itself when the
background pull of a vendor that was too slow for it lands (item 15). Screenshots go to
tests/artifacts/."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from apps.portal.models import DocumentDownload, StudentDocument
from apps.vendors import engine
from tests.browser.test_setup_e2e import assert_no_sideways_scroll, shoot, sign_in
from tests.browser.test_sync_status_browser import pages
from tests.factories import GuardianFactory, StaffFactory, StudentFactory, make_fee
from tests.sync.conftest import (  # noqa: F401  (fixtures: a real Celery worker)
    Sandbox,
    integration_for,
)
from tests.workers import celery_worker_process, live_worker  # noqa: F401  (a real worker)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IN_SCOPE = dt.date(2026, 9, 1)
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def documents_root(settings, tmp_path):
    settings.FEESYNC_DOCUMENTS_ROOT = tmp_path / "documents"


def _student_url(base: str, student_pk: int) -> str:
    return f"{base}/admin/students/student/{student_pk}/change/"


def test_students_page_fits_a_phone_lists_documents_with_downloads_and_shares_one(
    browser, live_server, artifacts: Path
):
    from tests.browser_support import AXE_JS, axe_violations, require_browser

    require_browser(AXE_JS)
    StaffFactory(username="district", groups=["District admin"])
    student = StudentFactory(first_name="Ana", last_name="Lopez")
    guardian = GuardianFactory()
    guardian.students.add(student)
    for n in range(3):
        make_fee(
            student=student,
            amount=f"1{n}.50",
            description=f"Overdue library book with a long title, number {n}",
            fee_date=IN_SCOPE,
        )
    report = StudentDocument.objects.create(
        student=student,
        title="Report card, term 1",
        file=ContentFile(b"%PDF-1.4 report", name="report-card.pdf"),
    )
    DocumentDownload.objects.create(
        document=report,
        document_title=report.title,
        student=student,
        user=guardian.user,
        downloaded_as=DocumentDownload.As.GUARDIAN,
    )
    base = live_server.url

    for page, name in pages(browser, base, "district"):
        page.goto(_student_url(base, student.pk))
        fees = page.locator("#fees-group")
        assert fees.get_by_text(
            "Overdue library book with a long title, number 2", exact=True
        ).is_visible()
        docs = page.locator("#documents-group")
        assert docs.get_by_text("Report card, term 1", exact=True).is_visible()
        assert docs.get_by_role("link", name="Download report-card.pdf").is_visible()
        # Who downloaded it: the guardian's login, as a guardian.
        assert re.search(rf"{guardian.user.username}\s+\(guardian,", docs.inner_text())
        assert_no_sideways_scroll(page)
        if name == "390":
            # A card per fee, each value named by its column.
            amount = fees.locator("tbody tr.form-row").first.locator("td.field-amount")
            shown = amount.evaluate("e => getComputedStyle(e, '::before').content")
            assert shown == '"Amount: "' or shown == 'attr(data-label) ": "', shown
            assert amount.evaluate("e => getComputedStyle(e).display") == "block"
        found = axe_violations(page, "#content-main")
        assert found == [], (name, [(v["id"], v["nodes"]) for v in found])
        shoot(page, artifacts, f"student-page-{name}.png")

    # Sharing a document from the student's page, through the upload row.
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, base, "district")
    page.goto(_student_url(base, student.pk))
    upload = page.locator("#documents-2-0")  # the first upload row (not the template)
    upload.get_by_label("Title").fill("Letter about the trip")
    upload.get_by_label("File").set_input_files(
        files=[{"name": "trip-letter.pdf", "mimeType": "application/pdf", "buffer": b"%PDF"}]
    )
    page.get_by_role("button", name="Save and continue editing").click()
    page.wait_for_load_state()
    assert "1 document shared with Ana's guardians." in page.locator(".messagelist").inner_text()
    shared = StudentDocument.objects.get(title="Letter about the trip")
    assert shared.student == student and shared.uploaded_by.username == "district"
    docs = page.locator("#documents-group")
    assert docs.get_by_role("link", name="Download trip-letter.pdf").is_visible()
    assert "Not downloaded yet" in docs.inner_text()
    # Downloading it from here is logged as staff, and the page then says so.
    with page.expect_download() as download:
        docs.get_by_role("link", name="Download trip-letter.pdf").click()
    assert download.value.suggested_filename == "trip-letter.pdf"
    page.reload()
    assert re.search(r"district\s+\(staff,", page.locator("#documents-group").inner_text())
    context.close()


def test_every_autocomplete_box_has_a_name_on_the_add_fee_page(
    browser, live_server, artifacts: Path
):
    """Item 4's root fix: select2's combobox takes its field's label (the student picker
    was an unnamed combobox, serious for axe)."""
    from tests.browser_support import AXE_JS, axe_violations, require_browser

    require_browser(AXE_JS)
    StaffFactory(username="clerk", groups=["Fees clerk"])
    StudentFactory(first_name="Ana", last_name="Lopez")
    for page, name in pages(browser, live_server.url, "clerk"):
        page.goto(f"{live_server.url}/admin/fees/fee/add/")
        picker = page.get_by_role("combobox", name=re.compile(r"^Student"))
        assert picker.is_visible()
        assert axe_violations(page, "#content-main") == []
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"add-fee-{name}.png")


@pytest.mark.usefixtures("live_worker")  # the background pull runs in a real worker
def test_students_page_updates_itself_when_the_background_pull_lands(
    browser, live_server, payschools_sandbox: Sandbox, settings, artifacts: Path
):
    """Item 15 on the staff site: the vendor answers after the page's deadline, so the page
    is built without the payment; the pull goes on in the worker and the page then shows
    the payment without a reload, saying "Payments updated"."""
    settings.FEESYNC_STUDENT_PAGE_DEADLINE_SECONDS = 1
    StaffFactory(username="clerk", groups=["Fees clerk"])
    integration = integration_for(payschools_sandbox)
    student = StudentFactory(first_name="Ben")
    fee = make_fee(student=student, amount="30.00", description="Science trip", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    payschools_sandbox.control("pay", fee_ref=fee.reference, amount="30.00")
    payschools_sandbox.faults("slow", delay_ms=3000)  # longer than the page waits

    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    sign_in(page, live_server.url, "clerk")
    page.goto(_student_url(live_server.url, student.pk))
    notes = page.locator(".messagelist").inner_text()
    assert "could not be checked within 1 second" in notes
    assert "this page updates itself when they come in" in notes
    row = page.locator("#fees-group tbody tr.form-row").first
    assert row.locator("td.field-balance").inner_text().strip() == "30.00"
    loads = page.evaluate("performance.getEntriesByType('navigation').length")

    status = page.locator("#feesync-fresh-status")
    status.get_by_text("Payments updated.").wait_for(timeout=60_000)
    row = page.locator("#fees-group tbody tr.form-row").first
    assert row.locator("td.field-balance").inner_text().strip() == "0.00"
    assert "Paid" in row.locator("td.field-status").inner_text()
    assert "$0.00" in page.locator(".field-total_owed .readonly").inner_text()
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loads
    assert status.get_attribute("role") == "status"
    fee.refresh_from_db()
    assert fee.balance == 0
    shoot(page, artifacts, "student-page-updated-390.png")
    context.close()
