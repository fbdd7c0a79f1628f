"""Issue 11 item 9 in the browser (Chromium at 1366 and 390 px): support staff find a
parked change by the student's name, see whose fee it is and what it charges, follow the
links to the student and the fee, and narrow the fee list to parked fees."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apps.vendors.models import OutboxItem
from tests.browser.test_setup_e2e import shoot
from tests.browser.test_sync_status_browser import pages
from tests.factories import StaffFactory
from tests.vendors.setup_pages import IMPORT_AFTER, make_integration
from tests.vendors.test_support_lists import add_rows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_support_finds_a_parked_change_by_student_and_follows_it(
    browser, live_server, artifacts: Path
):
    StaffFactory(username="support", groups=["Support staff"])
    integration = make_integration(import_after=IMPORT_AFTER, name="PaySchools")
    fees = add_rows(integration, 4, 1)  # odd numbers parked, even waiting
    parked = fees[2]  # Lovelace3
    assert OutboxItem.objects.get(fee=parked).state == OutboxItem.State.PARKED

    for page, name in pages(browser, live_server.url, "support"):
        page.goto(f"{live_server.url}/admin/vendors/outboxitem/?state=parked")
        page.locator("#searchbar").fill("lovelace3")
        page.locator("#searchbar").press("Enter")
        page.wait_for_url(re.compile(r"q=lovelace3"))
        rows = page.locator("#result_list tbody tr")
        assert rows.count() == 1
        row = rows.first.inner_text()
        assert "Lovelace3, Ada" in row and "770003" in row
        assert "Lab kit 3" in row and "$12.50" in row
        assert "Parked: needs a retry" in row
        shoot(page, artifacts, f"support-outbox-{name}.png")

        rows.first.get_by_role("link", name="Lovelace3, Ada").click()
        page.wait_for_url(re.compile(rf"/admin/students/student/{parked.student.pk}/change/"))
        assert "770003" in page.locator("#content").inner_text()
        page.go_back()
        page.locator("#result_list tbody tr").first.get_by_role(
            "link", name=parked.reference
        ).click()
        assert parked.reference in page.locator("#content").inner_text()

        # The fee list, narrowed to parked fees, shows the two parked ones only.
        page.goto(f"{live_server.url}/admin/fees/fee/")
        filter_link = page.get_by_role("link", name="Parked: needs a retry")
        if not filter_link.is_visible():  # on a phone the filters fold away
            page.locator("#changelist-filter summary, #toggle-changelist-filter").first.click()
        filter_link.click()
        page.wait_for_url(re.compile(r"sync=parked"))
        shown = page.locator("#result_list tbody tr").all_inner_texts()
        assert sorted(re.search(r"Lovelace\d", r).group(0) for r in shown) == [
            "Lovelace1",
            "Lovelace3",
        ]
        shoot(page, artifacts, f"support-fees-parked-{name}.png")
