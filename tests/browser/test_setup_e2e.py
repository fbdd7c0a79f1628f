"""The integration setup screens and dashboard in a real browser (Playwright driving Debian's
Chromium) against the live server and a PaySchools sandbox over real HTTP.

Screenshots of the setup page and the dashboard at 1280 and 375 px go to tests/artifacts/.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from apps.fees.models import Fee
from apps.vendors.kinds.payschools.sandbox import DEFAULT_PASSWORD, DEFAULT_USERNAME
from apps.vendors.models import Integration, MerchantAccountMapping
from tests.factories import CategoryFactory, MerchantAccountFactory, StaffFactory, StudentFactory
from tests.sync.conftest import Sandbox

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


def sign_in(page: Any, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/admin/")


def section(page: Any, anchor: str) -> Any:
    return page.locator(f"section#{anchor}")


def shoot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / name), full_page=True)


def test_district_admin_sets_up_payschools_and_a_new_fee_reaches_the_vendor(
    browser, live_server, payschools_sandbox: Sandbox, artifacts: Path
):
    StaffFactory(username="district", groups=["District admin"])
    student = StudentFactory(first_name="Ada", last_name="Lovelace")
    category = CategoryFactory(code="TRIP", description="Field trips")
    CategoryFactory(code="ATH", description="Athletics")
    account = MerchantAccountFactory(name="General Fund", merchant_id="MID-GEN")
    base = live_server.url

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, base, "district")

    # The vendors app is "Payments" on the staff site, and adding an integration starts by
    # choosing the vendor.
    page.get_by_role("link", name="Integrations").first.click()
    page.get_by_role("link", name=re.compile("Add integration", re.I)).click()
    shoot(page, artifacts, "add-integration-1280.png")
    page.get_by_role("radio", name="PaySchools").check()
    page.get_by_label("Service URL").fill(payschools_sandbox.service_url)
    page.get_by_role("button", name="Create and continue to setup").click()
    integration = Integration.objects.get()
    assert integration.vendor_kind == "payschools" and not integration.enabled
    assert page.get_by_role("heading", name="PaySchools setup").is_visible()

    # 1. Connection: secrets are typed once and never shown back.
    connection = section(page, "connection")
    connection.get_by_label(re.compile("^Username:?$")).fill(DEFAULT_USERNAME)
    connection.get_by_label(re.compile("^Password:?$")).fill(DEFAULT_PASSWORD)
    connection.get_by_role("button", name="Save connection settings").click()
    assert "Connection settings saved." in section(page, "connection").inner_text()
    assert DEFAULT_PASSWORD not in page.content()
    assert section(page, "connection").get_by_label(re.compile("^Password:?$")).input_value() == ""

    # 2. Merchant accounts mapped to the vendor's ids.
    accounts = section(page, "accounts")
    accounts.get_by_label("Use with PaySchools").check()
    accounts.get_by_label("PaySchools' merchant ID").fill("PS-GEN-1")
    accounts.get_by_role("button", name="Save merchant accounts").click()
    assert "Merchant accounts saved" in section(page, "accounts").inner_text()
    assert MerchantAccountMapping.objects.get().vendor_merchant_id == "PS-GEN-1"

    # 3. Categories: all checked by default; saving them all means "every category".
    categories = section(page, "categories")
    assert categories.get_by_role("checkbox", name=re.compile("TRIP")).is_checked()
    categories.get_by_role("button", name="Save categories").click()
    assert "every category is sent" in section(page, "categories").inner_text()

    # 4. Test Pull and Test Push against the sandbox.
    section(page, "tests").get_by_role("button", name="Run Test Pull").click()
    assert "Test Pull passed" in section(page, "tests").inner_text()
    section(page, "tests").get_by_role("button", name="Run Test Push").click()
    tests_text = section(page, "tests").inner_text()
    assert "Test Push passed" in tests_text
    assert "What was tried" in tests_text and "Time taken" in tests_text

    # 5. The import-after date: preview (GET, nothing saved), then save.
    after = section(page, "import-after")
    assert "earlier fees never will" in after.inner_text()
    after.get_by_label("Import-after date").fill("2026-07-01")
    after.get_by_role("button", name="Preview").click()
    assert "import_after=2026-07-01" in page.url
    integration.refresh_from_db()
    assert integration.import_after is None  # a preview saves nothing
    assert "would be sent" in section(page, "import-after").inner_text()
    section(page, "import-after").get_by_role(
        "button", name="Save July 1, 2026 as the import-after date"
    ).click()
    assert "Import-after date set to July 1, 2026" in section(page, "import-after").inner_text()

    # 6. Parent options, with the message previewed as parents will see it.
    parent = section(page, "parent-options")
    assert parent.get_by_label("Parent button text").get_attribute("placeholder") == (
        "Go to PaySchools"
    )
    parent.get_by_label("Parent button URL").fill("https://parents.payschools.example/")
    parent.get_by_label("Message to parents").fill("Pay online by the 15th.")
    parent.get_by_role("button", name="Save parent options").click()
    parent = section(page, "parent-options")
    assert "Parent options saved." in parent.inner_text()
    assert "Pay online by the 15th." in parent.locator(".feesync-portal-notice").inner_text()

    # 7. The checklist is complete; enable.
    enable = section(page, "enable")
    assert "Missing" not in enable.locator(".feesync-checklist").inner_text()
    assert "has no unpaid fees that FeeSync did not send" in enable.inner_text()
    shoot(page, artifacts, "setup-1280.png")
    enable.get_by_role("button", name="Enable PaySchools").click()
    assert "PaySchools is enabled" in section(page, "enable").inner_text()
    integration.refresh_from_db()
    assert integration.enabled

    # A fee charged in the admin reaches the vendor at once (eager Celery, on commit).
    page.goto(f"{base}/admin/fees/fee/add/?student={student.pk}")
    page.get_by_label("Category").select_option(label=str(category))
    page.get_by_label("Merchant account").select_option(label=str(account))
    page.get_by_label("Description").fill("Science museum trip")
    page.get_by_label("Amount").fill("25.00")
    page.get_by_label("Fee date").fill("09/15/2026")
    page.get_by_role("button", name="Charge this fee").click()
    fee = Fee.objects.get()
    held = payschools_sandbox.fees()
    assert fee.reference in held
    assert held[fee.reference]["amount"] in ("25.00", 25.0, "25")

    # The dashboard shows it acknowledged.
    page.goto(f"{base}/admin/vendors/integration/{integration.pk}/dashboard/")
    progress = section(page, "progress").inner_text()
    assert "1 of 1 (100%)" in progress
    assert page.locator("meta[http-equiv=refresh]").count() == 0  # nothing waiting
    shoot(page, artifacts, "dashboard-1280.png")

    page.goto(f"{base}/admin/vendors/integration/")
    listing = page.locator("#result_list").inner_text()
    assert "PaySchools" in listing and "Enabled" in listing
    shoot(page, artifacts, "integrations-1280.png")

    # The fee's own page tells its story at the vendor.
    page.goto(f"{base}/admin/fees/fee/{fee.pk}/change/")
    timeline = page.locator("#sync-timeline").inner_text()
    assert "Up to date: PaySchools holds version" in timeline
    assert "First sent to PaySchools" in timeline
    shoot(page, artifacts, "fee-timeline-1280.png")

    # The same pages on a phone, and by keyboard alone.
    phone = browser.new_context(viewport=PHONE)
    page = phone.new_page()
    sign_in(page, base, "district")
    page.goto(f"{base}/admin/vendors/integration/{integration.pk}/change/")
    assert_no_sideways_scroll(page)
    shoot(page, artifacts, "setup-375.png")
    page.goto(f"{base}/admin/vendors/integration/{integration.pk}/dashboard/")
    shoot(page, artifacts, "dashboard-375.png")
    assert_no_sideways_scroll(page)
    context.close()
    phone.close()


def assert_no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    wide = page.evaluate(
        """() => {
            const out = [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                .map(e => e.tagName + '.' + e.className + '#' + e.id);
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                const range = document.createRange(); range.selectNodeContents(n);
                if (range.getBoundingClientRect().right > window.innerWidth + 1)
                    out.push(n.parentElement.tagName + ': ' + n.textContent.trim().slice(0, 60));
            }
            return out.slice(0, 5);
        }"""
    )
    assert width <= viewport + 1, f"the page scrolls sideways ({width}px in {viewport}px): {wide}"


def test_setup_page_works_with_the_keyboard_alone(
    browser, live_server, payschools_sandbox: Sandbox, artifacts: Path
):
    StaffFactory(username="district", groups=["District admin"])
    integration = Integration.objects.create(
        vendor_kind="payschools",
        slug="ps",
        name="PaySchools",
        service_url=payschools_sandbox.service_url,
    )
    integration.credentials = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
    integration.save()
    page = browser.new_context(viewport=PHONE).new_page()
    sign_in(page, live_server.url, "district")
    page.goto(f"{live_server.url}/admin/vendors/integration/{integration.pk}/change/")

    # Tab to "Run Test Pull" and press Enter: focus moves through the page in order, and
    # every stop is visible.
    for _ in range(200):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return [e.tagName, e.value || e.textContent || '', e.id]; }"
        )
        if focused[0] == "INPUT" and focused[1] == "Run Test Pull":
            break
    else:
        pytest.fail("Run Test Pull cannot be reached with the Tab key")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button shows no focus outline"
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert "Test Pull passed" in section(page, "tests").inner_text()

    # Every form field has a label and help text tied to it.
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll(
              '#content-main input:not([type=hidden]):not([type=submit]), '
              + '#content-main select, #content-main textarea')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.name)"""
    )
    assert unlabelled == []
    no_help = page.evaluate(
        """() => [...document.querySelectorAll(
              '#content-main form[method=post] input:not([type=hidden]):not([type=submit]), '
              + '#content-main select, #content-main textarea')]
            .filter(e => !e.getAttribute('aria-describedby')
                         && !(e.closest('fieldset') || {}).ariaDescribedByElements)
            .filter(e => !(e.closest('fieldset[aria-describedby]')))
            .map(e => e.name)"""
    )
    assert no_help == []


def test_support_reads_a_plain_message_when_the_vendor_is_down_and_cannot_open_credentials(
    browser, live_server, payschools_sandbox: Sandbox, artifacts: Path
):
    StaffFactory(username="support", groups=["Support staff"])
    integration = Integration.objects.create(
        vendor_kind="payschools",
        slug="ps",
        name="PaySchools",
        service_url=payschools_sandbox.service_url,
        import_after=dt.date(2026, 7, 1),
    )
    integration.credentials = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
    integration.save()
    payschools_sandbox.faults("down")

    page = browser.new_context(viewport=DESKTOP).new_page()
    sign_in(page, live_server.url, "support")
    page.goto(f"{live_server.url}/admin/vendors/integration/{integration.pk}/change/")
    # Secrets are masked, and there is no credentials form at all, not even masked inputs.
    connection = section(page, "connection")
    assert "••••••••" in connection.inner_text()
    assert DEFAULT_PASSWORD not in page.content()
    assert page.locator("#connection input, #connection form").count() == 0
    assert page.locator("input[type=password]").count() == 0

    section(page, "tests").get_by_role("button", name="Run Test Pull").click()
    text = section(page, "tests").inner_text()
    assert "Test Pull failed" in text
    assert "PaySchools' server is unavailable" in text  # the vendor's trouble, in words
    assert "Traceback" not in page.content()
    shoot(page, artifacts, "setup-support-vendor-down-1280.png")

    # The credentials form is refused outright.
    response = page.goto(
        f"{live_server.url}/admin/vendors/integration/{integration.pk}/setup/connection/"
    )
    assert response.status == 403


def test_a_fees_clerk_cannot_reach_setup_at_all(browser, live_server):
    StaffFactory(username="clerk", groups=["Fees clerk"])
    integration = Integration.objects.create(
        vendor_kind="payschools", slug="ps", name="PaySchools", service_url="http://127.0.0.1:9/"
    )
    page = browser.new_context(viewport=DESKTOP).new_page()
    sign_in(page, live_server.url, "clerk")
    assert page.get_by_role("link", name="Integrations").count() == 0
    assert "Payments" not in page.locator("#content-main").inner_text()
    base = f"{live_server.url}/admin/vendors/integration/"
    for url in [
        base,
        f"{base}add/",
        f"{base}{integration.pk}/change/",
        f"{base}{integration.pk}/dashboard/",
        f"{base}{integration.pk}/setup/connection/",
    ]:
        assert page.goto(url).status == 403, url


def test_a_dashboard_in_trouble_reads_plainly_and_its_actions_work(
    browser, live_server, artifacts: Path
):
    from django.utils import timezone

    from apps.vendors.models import Discrepancy, OutboxItem
    from tests.factories import make_fee

    StaffFactory(username="district", groups=["District admin"])
    integration = Integration.objects.create(
        vendor_kind="payschools",
        slug="ps",
        name="PaySchools – district fees",
        service_url="http://127.0.0.1:9/soap",
        import_after=dt.date(2026, 7, 1),
    )
    fees = [make_fee(fee_date=dt.date(2026, 9, 15)) for _ in range(3)]
    Integration.objects.filter(pk=integration.pk).update(
        enabled=True,
        consecutive_failures=4,
        last_error="PaySchools' server did not answer within 3 seconds.",
    )
    now = timezone.now()
    OutboxItem.objects.create(integration=integration, fee=fees[0], version=1, next_attempt_at=now)
    parked = [
        OutboxItem.objects.create(
            integration=integration,
            fee=fee,
            version=1,
            state="parked",
            attempts=20,
            next_attempt_at=now,
            last_error="Refused by the vendor: student 100123 is not enrolled at PaySchools.",
        )
        for fee in fees[1:]
    ]
    Discrepancy.objects.create(
        integration=integration,
        kind="foreign_fee",
        fee_ref="PS-ONLY-77",
        detail="PaySchools has fee PS-ONLY-77 of $30.00 for student 100555 that FeeSync never "
        "sent. FeeSync leaves it alone.",
    )
    Discrepancy.objects.create(
        integration=integration,
        kind="unmatched_payment",
        fee_ref="GONE-1",
        vendor_ref="PAY-404",
        detail="PaySchools sent payment PAY-404 for fee GONE-1, which FeeSync does not have.",
    )
    url = f"{live_server.url}/admin/vendors/integration/{integration.pk}/dashboard/"

    for viewport, name in ((DESKTOP, "1280"), (PHONE, "375")):
        page = browser.new_context(viewport=viewport).new_page()
        sign_in(page, live_server.url, "district")
        page.goto(url + "?refresh=off")
        alert = page.get_by_role("alert").first.inner_text()
        assert "the vendor is not answering" in alert
        assert "1 change is waiting and will be sent when PaySchools answers again." in alert
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"dashboard-trouble-{name}.png")

    # While work waits the page reloads itself (no JavaScript), unless told not to.
    page.goto(url)
    assert page.locator('meta[http-equiv="refresh"]').count() == 1

    page.goto(url + "?refresh=off")
    page.get_by_label(f"Retry fee {parked[0].fee.reference}").check()
    page.get_by_role("button", name="Retry selected").click()
    assert "1 parked change will be sent again now." in page.locator(".messagelist").inner_text()
    parked[0].refresh_from_db()
    assert parked[0].state == "pending"

    page.goto(url + "?refresh=off")
    unmatched = section(page, "unmatched")
    unmatched.get_by_label("How it was resolved").fill("Refunded by PaySchools.")
    unmatched.get_by_role("button", name=re.compile("^Mark resolved")).click()
    assert "marked resolved" in page.locator(".messagelist").inner_text()
    assert Discrepancy.objects.get(kind="unmatched_payment").resolution_note == (
        "Refunded by PaySchools."
    )


def test_setup_and_dashboard_have_no_serious_accessibility_violations(
    browser, live_server, payschools_sandbox: Sandbox
):
    """axe-core over the pages' own content (the admin's frame is Django's)."""
    from tests.browser_support import AXE_JS, axe_violations, require_browser
    from tests.factories import make_fee

    require_browser(AXE_JS)
    StaffFactory(username="district", groups=["District admin"])
    StaffFactory(username="support", groups=["Support staff"])
    MerchantAccountFactory()
    CategoryFactory()
    integration = Integration.objects.create(
        vendor_kind="payschools",
        slug="ps",
        name="PaySchools",
        service_url=payschools_sandbox.service_url,
        import_after=dt.date(2026, 7, 1),
        parent_message="Pay online by the 15th.",
        test_pull_ok=True,
        test_push_ok=True,
    )
    integration.credentials = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
    integration.save()
    make_fee(fee_date=dt.date(2026, 9, 15))
    base = f"{live_server.url}/admin/vendors/integration/{integration.pk}"
    found: dict[str, Any] = {}
    for user in ("district", "support"):
        for viewport, width in ((DESKTOP, 1280), (PHONE, 375)):
            page = browser.new_context(viewport=viewport).new_page()
            sign_in(page, live_server.url, user)
            page.goto(f"{base}/change/?import_after=2026-07-01")
            found[f"setup {user} {width}"] = axe_violations(page, "#content-main")
            page.goto(f"{base}/dashboard/?refresh=off")
            found[f"dashboard {user} {width}"] = axe_violations(page, "#content-main")
            page.goto(f"{live_server.url}/admin/vendors/integration/add/")
            if user == "district":
                found[f"add {width}"] = axe_violations(page, "#content-main")
            page.context.close()
    bad = {k: v for k, v in found.items() if v}
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())
