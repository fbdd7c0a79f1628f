"""Issue 11 item 4 in the browser (Chromium at 1366 and 390 px): disabling an integration
says what stops and asks for confirmation first; axe-core finds nothing serious there."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.vendors.models import Integration
from tests.browser.test_setup_e2e import assert_no_sideways_scroll, section, shoot
from tests.browser.test_sync_status_browser import pages
from tests.factories import StaffFactory
from tests.sync.conftest import Sandbox, integration_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_disabling_says_what_stops_and_asks_first(
    browser, live_server, payschools_sandbox: Sandbox, artifacts: Path
):
    from tests.browser_support import AXE_JS, axe_violations, require_browser

    require_browser(AXE_JS)
    StaffFactory(username="district", groups=["District admin"])
    integration = integration_for(payschools_sandbox, name="PaySchools (district)")
    url = f"{live_server.url}/admin/vendors/integration/{integration.pk}/change/"

    for page, name in pages(browser, live_server.url, "district"):
        Integration.objects.filter(pk=integration.pk).update(enabled=True)
        page.goto(url)
        enable = section(page, "enable")
        text = enable.inner_text()
        assert "Disabling PaySchools stops:" in text
        assert "No payment is pulled from PaySchools." in text
        assert "Parents no longer see PaySchools in the portal, nor its pay button." in text
        assert axe_violations(page, "#enable") == []
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"disable-confirm-{name}.png")
        # Not confirmed: the browser keeps the form, and nothing changes.
        enable.get_by_role("button", name="Disable PaySchools").click()
        assert Integration.objects.get(pk=integration.pk).enabled
        enable.get_by_label("Yes, disable PaySchools").check()
        enable.get_by_role("button", name="Disable PaySchools").click()
        assert "PaySchools is disabled" in section(page, "enable").inner_text()
        assert not Integration.objects.get(pk=integration.pk).enabled
