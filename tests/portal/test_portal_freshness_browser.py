"""Issue 11 item 15 in Chromium (390 px): a payment made at the vendor just before a parent
signs in reaches the page they are on even when the vendor is too slow for the sign-in's
deadline: the pull goes on in a real Celery worker and the page updates itself, saying
"Payments updated", without a reload. Screenshots go to tests/artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.vendors import engine
from tests.factories import make_fee
from tests.sync.conftest import (  # noqa: F401  (fixtures: a real Celery worker)
    Sandbox,
    integration_for,
)
from tests.workers import celery_worker_process, live_worker  # noqa: F401  (a real worker)

from .conftest import IN_SCOPE, PASSWORD, Family

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def payschools() -> object:
    box = Sandbox("payschools")
    try:
        yield box
    finally:
        box.stop()


@pytest.mark.usefixtures("live_worker")  # the background pull runs in a real worker
def test_the_parents_page_updates_itself_when_the_late_payment_comes_in(
    live_server, payschools: Sandbox, make_family, settings, artifacts: Path, browser, monkeypatch
):
    # The test reads the ledger while Playwright's loop runs in this thread (as the staff
    # site's browser fixture allows too).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.FEESYNC_PARENT_SIGN_IN_DEADLINE_SECONDS = 0.5
    family: Family = make_family(1, first_name="Ana")
    child = family.children[0]
    integration = integration_for(payschools)
    fee = make_fee(student=child, amount="25.00", description="Museum trip", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    payschools.control("pay", fee_ref=fee.reference, amount="25.00")  # just before sign-in
    payschools.faults("slow", delay_ms=2500)  # slower than the sign-in waits

    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{live_server.url}/portal/login/")
    page.get_by_label("Username").fill(family.user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")

    # The first page is honest about it: the payment could not be checked yet.
    notice = page.get_by_text("could not be checked just now")
    assert notice.is_visible()
    assert "this page updates itself when they come in" in notice.inner_text()
    assert page.locator("#portal-money .summary__total").inner_text() == "$25.00"
    loads = page.evaluate("performance.getEntriesByType('navigation').length")

    status = page.locator("#feesync-fresh-status")
    status.get_by_text("Payments updated.").wait_for(timeout=60_000)
    assert status.get_attribute("role") == "status"
    assert page.locator("#portal-money .summary__total").inner_text() == "$0.00"
    # The notice that the payment could not be checked went with the update.
    assert page.get_by_text("could not be checked just now").count() == 0
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loads
    fee.refresh_from_db()
    assert fee.balance == 0
    page.screenshot(path=str(artifacts / "portal-updated-390.png"), full_page=True)
    context.close()
