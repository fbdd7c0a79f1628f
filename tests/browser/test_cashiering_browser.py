"""Issue 14's cashiering in the browser (Chromium at 1366 and 390 px): a clerk opens a cash
drawer session, takes a cash payment on a student's fee, closes the session with a count
that differs; the supervisor (district admin) reconciles it with a note; the deposit report
shows the payment. axe-core finds nothing serious on the session's pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import NoReverseMatch, reverse

from apps.accounting.models import Bank, BankAccount, CashDrawer, CashDrawerSession
from apps.fees.models import LedgerEntry
from tests.browser.test_setup_e2e import assert_no_sideways_scroll, shoot, sign_in
from tests.browser.test_sync_status_browser import VIEWPORTS
from tests.browser_support import AXE_JS, axe_violations, require_browser
from tests.factories import SchoolFactory, StaffFactory, StudentFactory, make_fee

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(("viewport", "name"), VIEWPORTS)
def test_clerk_takes_cash_in_a_session_and_the_supervisor_reconciles_it(
    browser, live_server, artifacts: Path, viewport, name
):
    require_browser(AXE_JS)
    base = live_server.url
    StaffFactory(username="clerk-b", groups=["Fees clerk"])
    StaffFactory(username="boss-b", groups=["District admin"])
    school = SchoolFactory(name="Jefferson High School", cashiering=True)
    student = StudentFactory(school=school, first_name="Ada", last_name="Lovelace")
    fee = make_fee(student=student, amount="30.00")
    account = BankAccount.objects.create(
        bank=Bank.objects.create(school=school, name="First Riverside Bank"),
        name="General fund deposits",
        merchant_account=fee.merchant_account,
    )
    CashDrawer.objects.create(school=school, name="Front office")

    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    sign_in(page, base, "clerk-b")
    # The clerk opens a session at the front-office drawer.
    page.goto(f"{base}/admin/accounting/cashdrawersession/add/")
    page.get_by_label("Cash drawer").select_option(label="Front office (Jefferson High School)")
    page.get_by_role("button", name="Open the session").click()
    assert "opened at Front office" in page.locator(".messagelist").inner_text()
    session = CashDrawerSession.objects.get()

    # A cash payment on the student's fee, from the student's fees page.
    page.goto(f"{base}/admin/students/student/{student.pk}/change/")
    page.get_by_role("link", name=fee.reference).first.click()
    page.get_by_role("link", name="Take a payment").click()
    assert f"your session {session.pk} at Front office" in page.inner_text("#content")
    assert_no_sideways_scroll(page)
    page.get_by_label("Amount").fill("30.00")
    page.get_by_role("button", name="Record the payment").click()
    assert f"in cash drawer session {session.pk}" in page.locator(".messagelist").inner_text()
    assert LedgerEntry.objects.get(kind="payment").booking.cash_session == session

    # The clerk closes it, counting $2.00 less than the payment.
    page.goto(f"{base}/admin/accounting/cashdrawersession/{session.pk}/change/")
    assert "$30.00" in page.inner_text("#content")
    assert axe_violations(page, "#content") == []
    assert_no_sideways_scroll(page)
    page.get_by_role("link", name="Close this session").click()
    page.get_by_label("Cash counted").fill("28.00")
    assert axe_violations(page, "#content") == []
    assert_no_sideways_scroll(page)
    page.get_by_role("button", name="Close the session").click()
    assert "closed with $28.00 counted" in page.locator(".messagelist").inner_text()
    context.close()

    # The supervisor reconciles: the difference needs a note.
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    sign_in(page, base, "boss-b")
    page.goto(f"{base}/admin/accounting/cashdrawersession/{session.pk}/change/")
    page.get_by_role("link", name="Reconcile this session").click()
    summary = page.locator(".feesync-summary").inner_text()
    assert re.search(r"Expected\s+\$30\.00", summary)
    assert re.search(r"Counted\s+\$28\.00", summary)
    assert re.search(r"Difference \(counted − expected\)\s+−\$2\.00", summary)
    assert axe_violations(page, "#content") == []
    assert_no_sideways_scroll(page)
    page.get_by_role("button", name="Reconcile").click()
    assert "say why in the note" in page.inner_text("#content")
    page.get_by_label("Note").fill("Change given wrongly to one parent")
    page.get_by_role("button", name="Reconcile").click()
    assert "reconciled; difference −$2.00" in page.locator(".messagelist").inner_text()
    content = page.inner_text("#content")
    assert "Reconciled" in content and "Change given wrongly to one parent" in content
    assert "takes no more payments" in content
    assert axe_violations(page, "#content") == []
    assert_no_sideways_scroll(page)
    shoot(page, artifacts, f"cashiering-reconciled-{name}.png")
    session.refresh_from_db()
    assert (session.status, str(session.difference)) == ("reconciled", "-2.00")

    # --- For the integrator: the deposit report is refunds14's (issue 14 item 5), named
    # `admin:accounting_deposit_report`. Until it is merged this branch has no such page;
    # once it is, the payment must show there under its bank account, as cash.
    try:
        report = reverse("admin:accounting_deposit_report")
    except NoReverseMatch:
        report = None
    if report is not None:
        page.goto(f"{base}{report}")
        text = page.inner_text("#content")
        assert account.name in text and "30.00" in text and "Cash" in text
    context.close()
