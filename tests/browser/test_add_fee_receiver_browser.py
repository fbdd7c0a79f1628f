"""Issue 11 item 11 in the browser (Chromium at 1366 and 390 px): the add-fee form's
receiver hint follows the category and fee date the clerk picks, without a reload, and
axe-core finds nothing serious on the form."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from apps.vendors.models import Integration
from tests.browser.test_setup_e2e import assert_no_sideways_scroll, shoot
from tests.browser.test_sync_status_browser import pages
from tests.factories import CategoryFactory, StaffFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_receiver_hint_follows_category_and_date(browser, live_server, artifacts: Path):
    from tests.browser_support import AXE_JS, axe_violations, require_browser

    require_browser(AXE_JS)
    StaffFactory(username="clerk", groups=["Fees clerk"])
    trips = CategoryFactory(code="TRIP", description="Field trips")
    books = CategoryFactory(code="BOOK", description="Lost books")
    ps = Integration(
        vendor_kind="payschools",
        slug="ps",
        name="PaySchools (district)",
        service_url="http://127.0.0.1:9/soap",
        enabled=True,
        import_after=dt.date(2026, 8, 1),
    )
    ps.credentials = {"username": "u", "password": "p"}
    ps.save()
    ps.categories.set([trips])

    for page, name in pages(browser, live_server.url, "clerk"):
        page.goto(f"{live_server.url}/admin/fees/fee/add/")
        hint = page.locator("#receiver-hint")
        loaded = page.evaluate("performance.getEntriesByType('navigation').length")
        page.get_by_label("Category").select_option(str(trips.pk))
        page.get_by_label("Fee date").fill("09/15/2026")
        assert hint.inner_text() == "This fee will be sent to PaySchools (district)."
        # Before the import-after date: nobody.
        page.get_by_label("Fee date").fill("07/01/2026")
        assert hint.inner_text() == (
            "No integration receives this fee: parents pay it to the district."
        )
        page.get_by_label("Fee date").fill("2026-09-15")
        assert "PaySchools (district)" in hint.inner_text()
        # A category no integration sends.
        page.get_by_label("Category").select_option(str(books.pk))
        assert hint.inner_text().startswith("No integration receives this fee")
        # All on the same page: no reload happened.
        assert page.evaluate("performance.getEntriesByType('navigation').length") == loaded
        assert page.url.endswith("/admin/fees/fee/add/")
        # The hint itself (the student picker, select2, has a known unnamed combobox).
        assert axe_violations(page, "#receiver-hint") == []
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"add-fee-receiver-{name}.png")
