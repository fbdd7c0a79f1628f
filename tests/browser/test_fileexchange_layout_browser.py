"""A district admin designs the file exchange's district-defined layout in a real browser
(issue 12, item 3): picks and orders the columns with the keyboard and the mouse, watches
the preview of the file change before anything is saved, saves, runs the export, and the
file on the financials side's SFTP server has exactly those columns in that order. Then
the same page at 390 px: no sideways scrolling, no serious axe-core finding."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from apps.vendors.kinds.fileexchange import sandbox
from apps.vendors.models import Integration
from tests.browser.test_setup_e2e import DESKTOP, assert_no_sideways_scroll, section, sign_in
from tests.browser_support import AXE_JS, axe_violations, require_browser
from tests.factories import CategoryFactory, MerchantAccountFactory, StaffFactory, make_fee

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE_390 = {"width": 390, "height": 844}


def _file_exchange(financials: Any, category: Any) -> Integration:
    """An enabled file exchange wired to the sandbox over SFTP, on the built-in layout."""
    integration = Integration(
        vendor_kind="fileexchange",
        slug="fileexchange-layout",
        name="Student financials",
        enabled=True,
        service_url=financials.url,
        timeout_seconds=10,
        import_after=dt.date(2026, 7, 1),
        test_pull_ok=True,
        test_push_ok=True,
        options={
            "transport": "sftp",
            "host": "127.0.0.1",
            "port": financials.sftp.port,
            "host_key": sandbox.host_key_line(),
            "item_types": "LIBFINE = 800000000001",
        },
    )
    integration.credentials = {
        "username": sandbox.DEFAULT_USERNAME,
        "password": sandbox.DEFAULT_PASSWORD,
    }
    integration.save()
    integration.categories.set([category])
    return integration


def _chosen(page: Any) -> list[str]:
    return [
        " ".join(t.split())
        for t in page.locator(".feesync-layout-chosen li .feesync-layout-name").all_inner_texts()
    ]


def test_staff_pick_and_order_columns_see_the_preview_live_and_the_export_follows_it(
    browser: Any, live_server: Any, financials: Any, artifacts: Path
) -> None:
    StaffFactory(username="district", groups=["District admin"])
    libfine = CategoryFactory(code="LIBFINE", description="Library fines")
    account = MerchantAccountFactory(name="Library Fund", merchant_id="MID-LIB")
    first = make_fee(amount="4.50", category=libfine, merchant_account=account)
    second = make_fee(amount="12.00", category=libfine, merchant_account=account)
    integration = _file_exchange(financials, libfine)
    base = live_server.url

    page = browser.new_context(viewport=DESKTOP).new_page()
    sign_in(page, base, "district")
    page.goto(f"{base}/admin/vendors/integration/{integration.pk}/change/")
    connection = section(page, "connection")
    preview = connection.locator(".feesync-layout-preview-text")
    # The live preview starts from the saved (built-in) layout.
    preview.filter(has_text="EMPLID,ITEM_TYPE,ITEM_AMT").wait_for()
    assert connection.locator("textarea[name=columns]").is_hidden()  # the picker replaces it

    connection.get_by_label("Column layout").select_option("district")
    assert _chosen(page)[:3] == ["1. Student id", "2. Item type", "3. Amount"]
    # The mouse: drop five columns and add the student's name.
    for name in ("Item type", "Effective date (fee date)", "Due date", "Term", "Description"):
        connection.get_by_role("button", name=f"Remove {name}", exact=True).click()
    connection.get_by_role("button", name="Add Student name", exact=True).click()
    assert _chosen(page) == [
        "1. Student id",
        "2. Amount",
        "3. FeeSync reference",
        "4. Student name",
    ]
    # The keyboard: the reference moves to the front with Enter, the focus staying on its
    # "up" button, and the screen reader is told where it went.
    up = connection.get_by_role("button", name="Move FeeSync reference up", exact=True)
    up.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "Move FeeSync reference down"  # at the top "up" is off; the focus moved to "down"
    )
    assert (
        "FeeSync reference moved to column 1 of 4."
        in connection.locator(".feesync-layout-said").inner_text()
    )
    connection.get_by_label(re.compile(r"^Delimiter:?$")).select_option("|")

    # Before saving: the preview shows the new columns and order, from the real fees.
    preview.filter(has_text="reference|student_id|amount|student_name").wait_for()
    lines = preview.inner_text().splitlines()
    assert lines[0] == "reference|student_id|amount|student_name"
    student = first.student
    assert lines[1] == (
        f"{first.reference}|{student.student_number}|4.50|{student.first_name} {student.last_name}"
    )
    assert lines[2].startswith(f"{second.reference}|") and "|12.00|" in lines[2]
    assert "Not saved" in connection.locator(".feesync-layout-preview-note").inner_text()
    assert page.locator("#unsaved-note").is_visible()
    integration.refresh_from_db()
    assert "columns" not in integration.options  # nothing saved yet
    connection.locator("#div_id_columns").screenshot(
        path=str(artifacts / "fileexchange-layout-picker-1280.png")
    )

    connection.get_by_role("button", name="Save connection settings").click()
    assert "Connection settings saved." in section(page, "connection").inner_text()
    integration.refresh_from_db()
    assert integration.options["columns"] == "reference,student_id,amount,student_name"
    assert integration.options["layout"] == "district" and integration.options["delimiter"] == "|"
    assert integration.test_pull_ok and integration.test_push_ok  # a layout is no new server
    assert _chosen(page) == [
        "1. FeeSync reference",
        "2. Student id",
        "3. Amount",
        "4. Student name",
    ]

    page.goto(f"{base}/admin/vendors/integration/{integration.pk}/dashboard/")
    page.get_by_role("button", name=re.compile(r"Run now\W+Export changed fees")).click()
    page.wait_for_load_state()
    outbound = sorted((Path(financials.root) / "outbound").glob("feesync_fees_*.csv"))
    assert len(outbound) == 1, outbound
    written = outbound[0].read_text().splitlines()
    assert written[0] == "reference|student_id|amount|student_name"
    assert [line.split("|")[0] for line in written[1:]] == [first.reference, second.reference]
    assert written[1] == lines[1]  # the file is what the preview showed
    # The financials side read it too (it works out the delimiter from the header).
    held = requests.get(f"{financials.url}/_sandbox/state", timeout=10).json()["fees"]
    assert sorted((f["fee_ref"], f["amount"]) for f in held) == sorted(
        [(first.reference, "4.50"), (second.reference, "12.00")]
    )
    page.context.close()


def test_the_layout_picker_fits_a_phone_and_has_no_serious_accessibility_violation(
    browser: Any, live_server: Any, financials: Any, artifacts: Path
) -> None:
    require_browser(AXE_JS)
    StaffFactory(username="district", groups=["District admin"])
    libfine = CategoryFactory(code="LIBFINE", description="Library fines")
    make_fee(amount="4.50", category=libfine, description="A very long description " * 4)
    integration = _file_exchange(financials, libfine)
    integration.options = {**integration.options, "layout": "district"}
    integration.save()

    page = browser.new_context(viewport=PHONE_390).new_page()
    sign_in(page, live_server.url, "district")
    page.goto(f"{live_server.url}/admin/vendors/integration/{integration.pk}/change/")
    connection = section(page, "connection")
    connection.locator(".feesync-layout-preview-text").filter(has_text="student_id").wait_for()
    connection.get_by_role("button", name="Add Student name", exact=True).click()
    assert_no_sideways_scroll(page)
    connection.locator("#div_id_columns").screenshot(
        path=str(artifacts / "fileexchange-layout-picker-390.png")
    )
    assert axe_violations(page, "#connection") == []
    page.context.close()


def test_without_javascript_the_columns_are_typed_and_saved_the_same_way(
    browser: Any, live_server: Any, financials: Any
) -> None:
    StaffFactory(username="district", groups=["District admin"])
    libfine = CategoryFactory(code="LIBFINE", description="Library fines")
    integration = _file_exchange(financials, libfine)

    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, live_server.url, "district")
    page.goto(f"{live_server.url}/admin/vendors/integration/{integration.pk}/change/")
    connection = section(page, "connection")
    assert connection.locator(".feesync-layout-picker").is_hidden()
    assert "student_name (student name)" in connection.locator(".feesync-layout-names").inner_text()
    connection.get_by_label("Column layout").select_option("district")
    columns = connection.get_by_label(re.compile(r"^Columns \(district layout\):?$"))
    columns.fill("reference, amount, amount")
    connection.get_by_role("button", name="Save connection settings").click()
    # Refused by name, the typed value still there to correct.
    assert "“Amount” (amount) is listed twice" in section(page, "connection").inner_text()
    columns = section(page, "connection").get_by_label(
        re.compile(r"^Columns \(district layout\):?$")
    )
    assert columns.input_value() == "reference, amount, amount"
    columns.fill("reference, amount, student_name")
    section(page, "connection").get_by_role("button", name="Save connection settings").click()
    assert "Connection settings saved." in section(page, "connection").inner_text()
    integration.refresh_from_db()
    assert integration.options["columns"] == "reference,amount,student_name"
    context.close()
