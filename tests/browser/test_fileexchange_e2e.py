"""A district admin takes a file exchange from blank to enabled in a real browser, against
the file-exchange sandbox (SFTP on loopback, pinned host key), and the first export
reaches the financials side. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from apps.vendors.kinds.fileexchange import sandbox
from apps.vendors.models import Integration
from tests.browser.test_setup_e2e import (
    DESKTOP,
    PHONE,
    assert_no_sideways_scroll,
    section,
    shoot,
    sign_in,
)
from tests.factories import CategoryFactory, MerchantAccountFactory, StaffFactory, make_fee

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_district_admin_sets_up_a_file_exchange_and_the_first_export_arrives(
    browser, live_server, financials, artifacts: Path
):
    StaffFactory(username="district", groups=["District admin"])
    libfine = CategoryFactory(code="LIBFINE", description="Library fines")
    MerchantAccountFactory(name="Library Fund", merchant_id="MID-LIB")
    fee = make_fee(amount="4.50", category=libfine, description="Overdue library book")
    base = live_server.url

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, base, "district")
    page.get_by_role("link", name="Integrations").first.click()
    page.get_by_role("link", name=re.compile("Add integration", re.I)).click()
    page.get_by_role("radio", name="File exchange").check()
    page.get_by_label("Service URL").fill(financials.url)
    page.get_by_role("button", name="Create and continue to setup").click()
    integration = Integration.objects.get()
    assert integration.vendor_kind == "fileexchange" and not integration.enabled
    assert page.get_by_role("heading", name="File exchange setup").is_visible()

    connection = section(page, "connection")
    connection.get_by_label("How files are exchanged").select_option("sftp")
    connection.get_by_label("Server").fill("127.0.0.1")
    connection.get_by_label(re.compile("^Port:?$")).fill(str(financials.sftp.port))
    connection.get_by_label("Pinned host key").fill(sandbox.host_key_line())
    connection.get_by_label(re.compile("^User name:?$")).fill(sandbox.DEFAULT_USERNAME)
    connection.get_by_label(re.compile("^Password:?$")).fill(sandbox.DEFAULT_PASSWORD)
    connection.get_by_label("Item types").fill("LIBFINE = 800000000001")
    connection.get_by_role("button", name="Save connection settings").click()
    assert "Connection settings saved." in section(page, "connection").inner_text()
    assert sandbox.DEFAULT_PASSWORD not in page.content()
    # The preview shows the built-in layout's header (no fee in scope before the date).
    assert "EMPLID,ITEM_TYPE,ITEM_AMT" in page.locator(".feesync-file-preview").inner_text()

    accounts = section(page, "accounts")
    accounts.get_by_label("Use with File exchange").first.check()
    accounts.get_by_role("button", name="Save merchant accounts").click()
    assert "Merchant accounts saved" in section(page, "accounts").inner_text()

    section(page, "tests").get_by_role("button", name="Run Test Pull").click()
    pulled = section(page, "tests").inner_text()
    assert "Test Pull passed" in pulled and "inbound directory can be read" in pulled
    section(page, "tests").get_by_role("button", name="Run Test Push").click()
    pushed = section(page, "tests").inner_text()
    assert "Test Push passed" in pushed and "probe was written and removed" in pushed

    after = section(page, "import-after")
    after.get_by_label("Import-after date").fill("2026-07-01")
    after.get_by_role("button", name="Preview").click()
    section(page, "import-after").get_by_role(
        "button", name="Save July 1, 2026 as the import-after date"
    ).click()
    assert "Import-after date set to July 1, 2026" in section(page, "import-after").inner_text()

    # With the fee in scope, the preview shows its line, item type mapped.
    preview = page.locator(".feesync-file-preview").inner_text()
    assert f"800000000001,4.50,2026-09-15,,{fee.reference}" in preview

    enable = section(page, "enable")
    assert "Missing" not in enable.locator(".feesync-checklist").inner_text()
    shoot(page, artifacts, "fileexchange-setup-1280.png")
    enable.get_by_role("button", name="Enable File exchange").click()
    assert "File exchange is enabled" in section(page, "enable").inner_text()
    integration.refresh_from_db()
    assert integration.enabled

    # The dashboard runs the export now; the financials side then holds the fee.
    page.goto(f"{base}/admin/vendors/integration/{integration.pk}/dashboard/")
    page.get_by_role("button", name=re.compile(r"Run now\W+Export changed fees")).click()
    page.wait_for_load_state()
    shoot(page, artifacts, "fileexchange-dashboard-1280.png")
    held = requests.get(f"{financials.url}/_sandbox/state", timeout=10).json()["fees"]
    assert [f["fee_ref"] for f in held] == [fee.reference]
    assert "1 of 1" in section(page, "progress").inner_text()

    phone = browser.new_context(viewport=PHONE)
    small = phone.new_page()
    sign_in(small, base, "district")
    small.goto(f"{base}/admin/vendors/integration/{integration.pk}/change/")
    assert_no_sideways_scroll(small)
    shoot(small, artifacts, "fileexchange-setup-375.png")
    context.close()
    phone.close()
