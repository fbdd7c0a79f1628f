"""The parent portal in a real browser (Playwright driving Debian's Chromium) against the live
server: a phone (390 px) and a desktop (1366 px) layout, accessibility checked by axe-core on
every portal page, and a parent using it with JavaScript switched off.

Screenshots go to tests/artifacts/ (git-ignored) for people to look at.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.utils import timezone

from apps.fees.models import Fee
from apps.fees.services import Origin, fee_waive, payment_take
from apps.portal.models import (
    ActivityOffer,
    ActivitySignup,
    DocumentDownload,
    PortalLockout,
    StudentDocument,
)
from apps.portal.services import activity_sign_up
from apps.vendors import engine
from apps.vendors.models import LunchBalance, StudentVendorBalance
from tests.factories import ActivityFactory, CategoryFactory, MerchantAccountFactory, make_fee
from tests.sync.conftest import Sandbox, integration_for

from .conftest import AXE_JS, IN_SCOPE, PASSWORD, Family

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
BLOCKING = ("serious", "critical")


@pytest.fixture(autouse=True)
def fresh_rule_cache(settings, tmp_path):
    settings.FEESYNC_DOCUMENTS_ROOT = tmp_path / "documents"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def family(make_family, make_integration) -> Family:
    """Two children with open and settled fees, a lunch balance under the threshold for one;
    the district locks Documents and Activity sign-up above $100.00, which the family's
    Community Pass balance (counted by its lock option) takes it over."""
    lockout = PortalLockout.current()
    lockout.enabled = True
    lockout.threshold = Decimal("100.00")
    lockout.locked_sections = ["documents", "activities"]
    lockout.unlock_message = "Questions? Call the business office at 555-0100."
    lockout.save()
    clubs = CategoryFactory(description="Clubs")
    community = make_integration(
        vendor_kind="communitypass",
        name="Community Pass",
        service_url="http://127.0.0.1:9/v1",
        button_url="https://cp.example.org/pay",
        categories=[clubs],
        show_vendor_balance=True,
        lock_portal_on_balance=True,
        balance_message="Your Community Pass balance includes activity registrations.",
        parent_message="Club fees are paid at Community Pass.",
        payments_pulled_at=timezone.now() - dt.timedelta(minutes=2),
    )
    integration = make_integration(
        parent_message="Fees can be paid online at PaySchools by card or bank transfer.",
        show_lunch_balance=True,
        lunch_balance_threshold=Decimal("5.00"),
        lunch_payment_url="https://lunch.example.org/add",
        payments_pulled_at=timezone.now() - dt.timedelta(minutes=2),
    )
    fam = make_family(2)
    ana, ben = fam.children
    trips, books = (
        CategoryFactory(description="Field trips"),
        CategoryFactory(description="Books and supplies"),
    )
    make_fee(
        student=ana,
        category=trips,
        description="Science museum trip",
        amount="45.00",
        fee_date=IN_SCOPE,
        due_date=IN_SCOPE + dt.timedelta(days=30),
    )
    part = make_fee(
        student=ana,
        category=books,
        description="Workbook set",
        amount="62.50",
        fee_date=IN_SCOPE,
        due_date=IN_SCOPE + dt.timedelta(days=14),
    )
    payment_take(fee=part, amount="20.00", method="cash", origin=Origin())
    paid = make_fee(student=ana, category=books, description="Planner", amount="8.00")
    payment_take(fee=paid, amount="8.00", method="card", origin=Origin())
    make_fee(
        student=ben,
        category=books,
        description="Library fine (overdue book)",
        amount="4.25",
        fee_date=dt.date(2026, 6, 1),
        due_date=dt.date(2026, 6, 15),
    )
    waived = make_fee(student=ben, category=trips, description="Zoo trip", amount="30.00")
    fee_waive(fee=waived, reason="hardship", origin=Origin())
    integration.categories.set([trips, books])  # one vendor per fee: clubs go to Community Pass
    now = timezone.now()
    LunchBalance.objects.create(
        integration=integration, student=ana, balance="3.10", fetched_at=now
    )
    LunchBalance.objects.create(
        integration=integration, student=ben, balance="22.00", fetched_at=now
    )
    make_fee(
        student=ben,
        category=clubs,
        description="Chess club",
        amount="30.00",
        fee_date=IN_SCOPE,
        due_date=IN_SCOPE + dt.timedelta(days=20),
    )
    # The family's account at Community Pass: Ben's chess club and $20.00 kept only there.
    StudentVendorBalance.objects.create(
        integration=community, student=ana, balance="0.00", fetched_at=now
    )
    StudentVendorBalance.objects.create(
        integration=community, student=ben, balance="50.00", fetched_at=now
    )
    return fam


def sign_in(page: Any, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/portal/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is (details opened first,
    so that the fee history is checked too)."""
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


def open_history_of(page: Any, name: str) -> None:
    """Click (no script involved: a native <details>) the fee history of one child."""
    section = page.locator("section.child", has=page.get_by_role("heading", name=name))
    section.locator("summary", has_text="Paid and closed fees").click()


def no_horizontal_scroll(page: Any) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1366px"])
def test_parent_reads_fees_and_fines_on_phone_and_desktop(
    live_server, family, browser, artifacts: Path, viewport
):
    ana, ben = family.children
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, family.user.username)
        assert page.url == f"{live_server.url}/portal/"
        page.screenshot(
            path=str(artifacts / f"portal-fees-{viewport['width']}.png"), full_page=True
        )

        assert page.get_by_role("heading", level=1, name="Fees and Fines").is_visible()
        assert page.get_by_role("heading", name=ana.full_name).is_visible()
        assert page.get_by_role("heading", name=ben.full_name).is_visible()
        assert page.get_by_text("Message from the district about paying at PaySchools").is_visible()
        assert page.get_by_role("rowheader", name="Science museum trip").is_visible()
        assert page.get_by_text("Payments made at PaySchools: updated 2 minutes ago").is_visible()
        assert page.get_by_text("Low balance").is_visible()
        assert page.get_by_role(
            "heading", name="Documents and Activity sign-up are locked"
        ).is_visible()
        assert no_horizontal_scroll(page), "the page scrolls sideways"

        pay = page.get_by_role("link", name="Go to PaySchools").first
        assert pay.is_visible()
        assert pay.get_attribute("target") == "_blank"
        assert pay.get_attribute("rel") == "noopener"
        box = pay.bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44

        # The history opens without script (a native <details>).
        open_history_of(page, ana.full_name)
        assert page.get_by_text("Planner").is_visible()
        page.screenshot(
            path=str(artifacts / f"portal-fees-{viewport['width']}-history.png"), full_page=True
        )
    finally:
        context.close()


@pytest.fixture
def clear_family(make_family, family) -> Family:
    """A family that owes nothing (so nothing is locked), with a document shared with its
    child and two activities open for sign-up, one of which the child is signed up for."""
    fam = make_family(1, first_name="Cleo")
    cleo = fam.children[0]
    StudentDocument.objects.create(
        student=cleo,
        title="Report card, term 1",
        note="Signed by the principal.",
        file=ContentFile(b"%PDF-1.4 report card of Cleo", name="report-card-term-1.pdf"),
    )
    clubs = CategoryFactory(description="After-school clubs")
    account = MerchantAccountFactory()
    for title in ("Fall soccer", "Robotics club"):
        ActivityOffer.objects.create(
            activity=ActivityFactory(name=title, school=None),
            title=title,
            details="Tuesdays and Thursdays, 3:30 to 5 pm, in the gym.",
            fee_description=f"{title} fee",
            fee_amount=Decimal("45.00"),
            category=clubs,
            merchant_account=account,
            opens_on=timezone.localdate() - dt.timedelta(days=3),
            closes_on=timezone.localdate() + dt.timedelta(days=30),
        )
    robotics = ActivityOffer.objects.get(title="Robotics club")
    activity_sign_up(offer=robotics, student=cleo, user=fam.user, token=uuid.uuid4())
    return fam


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1366px"])
def test_portal_pages_have_no_serious_accessibility_violations(
    live_server, family, clear_family, browser, artifacts: Path, viewport
):
    ana, ben = family.children
    cleo = clear_family.children[0]
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    found: dict[str, list[dict[str, Any]]] = {}
    width = viewport["width"]
    try:
        page.goto(f"{live_server.url}/portal/login/")
        found["login"] = axe_violations(page)
        page.goto(f"{live_server.url}/portal/password-reset/")
        found["password reset"] = axe_violations(page)
        page.get_by_label("Email address").fill("nobody@example.org")
        page.get_by_role("button", name="Send the link").click()
        found["password reset sent"] = axe_violations(page)
        page.goto(f"{live_server.url}/portal/no-such-page/")
        found["not found"] = axe_violations(page)

        sign_in(page, live_server.url, family.user.username)
        found["fees (locked family)"] = axe_violations(page)
        page.goto(f"{live_server.url}/portal/students/{ana.pk}/")
        found["child page"] = axe_violations(page)
        page.goto(f"{live_server.url}/portal/students/{ben.pk}/documents/")
        page.screenshot(path=str(artifacts / f"portal-locked-{width}.png"), full_page=True)
        found["locked documents"] = axe_violations(page)
        page.goto(f"{live_server.url}/portal/students/{ben.pk}/activities/")
        found["locked activities"] = axe_violations(page)
        page.get_by_role("button", name="Sign out").click()

        sign_in(page, live_server.url, clear_family.user.username)
        found["fees (clear family)"] = axe_violations(page)
        page.goto(f"{live_server.url}/portal/students/{cleo.pk}/documents/")
        page.screenshot(path=str(artifacts / f"portal-documents-{width}.png"), full_page=True)
        found["documents"] = axe_violations(page)
        page.goto(f"{live_server.url}/portal/students/{cleo.pk}/activities/")
        page.screenshot(path=str(artifacts / f"portal-activities-{width}.png"), full_page=True)
        found["activity sign-up"] = axe_violations(page)
    finally:
        context.close()

    assert {name: v for name, v in found.items() if v} == {}


def test_lockout_page_is_clear_and_accessible(live_server, family, browser, artifacts: Path):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        for attempt in range(10):
            sign_in(page, live_server.url, family.user.username, f"wrong-{attempt}")
        sign_in(page, live_server.url, family.user.username)  # the right password, too late
        page.screenshot(path=str(artifacts / "portal-locked-out-390.png"), full_page=True)

        assert page.get_by_role("heading", name="Sign-in is paused for a while").is_visible()
        assert page.get_by_role("link", name="Reset it by e-mail").is_visible()
        assert axe_violations(page) == []
    finally:
        context.close()


def test_parent_signs_in_and_reads_fees_without_javascript(
    live_server, family, browser, artifacts: Path
):
    ana, ben = family.children
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, family.user.username)
        assert page.url == f"{live_server.url}/portal/"
        assert page.get_by_role("rowheader", name="Science museum trip").is_visible()
        assert page.get_by_role("rowheader", name="Library fine (overdue book)").is_visible()
        assert page.get_by_text("$121.75").first.is_visible()  # 45.00 + 42.50 + 4.25 + 30.00
        open_history_of(page, ana.full_name)
        assert page.get_by_text("Planner").is_visible()
        page.screenshot(path=str(artifacts / "portal-fees-390-nojs.png"), full_page=True)

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_load_state("load")
        assert page.url == f"{live_server.url}/portal/login/"
    finally:
        context.close()


# --- issue 11: where to pay, the lockout and its sections, the sign-in pull ---------------------


def row_of(page: Any, fee: str) -> Any:
    return page.locator("tr", has=page.get_by_role("rowheader", name=fee))


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1366px"])
def test_each_fee_says_where_it_is_paid_and_the_totals_say_what_they_include(
    live_server, family, browser, artifacts: Path, viewport
):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, family.user.username)
        page.screenshot(
            path=str(artifacts / f"portal-where-to-pay-{viewport['width']}.png"), full_page=True
        )

        museum = row_of(page, "Science museum trip")
        assert museum.get_by_text("At PaySchools", exact=True).is_visible()
        pay = museum.get_by_role("link", name="Pay Science museum trip at PaySchools")
        assert pay.is_visible() and pay.get_attribute("href") == "https://pay.example.org/parents"
        chess = row_of(page, "Chess club")
        assert chess.get_by_text("At Community Pass", exact=True).is_visible()
        cp_pay = chess.get_by_role("link", name="Pay Chess club at Community Pass")
        assert cp_pay.get_attribute("href") == "https://cp.example.org/pay"
        fine = row_of(page, "Library fine (overdue book)")
        assert fine.get_by_text("At the school office", exact=True).is_visible()
        assert fine.get_by_role("link").count() == 0

        summary = page.locator("section.summary")
        assert summary.get_by_text("$121.75").is_visible()
        assert summary.get_by_text("each counted once").is_visible()
        assert summary.get_by_text("$87.50 at PaySchools").is_visible()
        assert summary.get_by_text("$30.00 at Community Pass").is_visible()
        assert summary.get_by_text("$4.25 at the school office").is_visible()
        # Each district message is beside its own vendor's button.
        ps_place = summary.locator("li.place", has_text="at PaySchools")
        assert ps_place.get_by_text("Fees can be paid online at PaySchools").is_visible()
        assert ps_place.get_by_role("link", name="Go to PaySchools").is_visible()
        assert "Club fees" not in ps_place.inner_text()

        balance = page.locator("section.vendor-balance")
        assert balance.count() == 1  # the family's, once
        text = balance.inner_text()
        assert "Your family's balance at Community Pass" in text and "$50.00" in text
        assert (
            "$30.00 of it is for the fees marked" in text and "(already in the total due)" in text
        )
        assert (
            "$20.00 of it is for charges kept only at Community Pass (not in the total due)" in text
        )
        assert "Everything owed, counted once: $141.75" in text
        assert no_horizontal_scroll(page), "the page scrolls sideways"
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1366px"])
def test_locked_sections_say_why_and_unlock_once_paid_then_documents_and_sign_up_work(
    live_server, family, browser, artifacts: Path, viewport, monkeypatch
):
    # The test writes to the database between page loads (a payment reaching FeeSync):
    # nothing runs concurrently with it, the live server answers from its own thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ana, ben = family.children
    StudentDocument.objects.create(
        student=ben,
        title="Report card, term 1",
        file=ContentFile(b"%PDF-1.4 report card of Ben", name="report-card-term-1.pdf"),
    )
    offer = ActivityOffer.objects.create(
        activity=ActivityFactory(name="Robotics", school=None),
        title="Robotics club",
        fee_description="Robotics club fee",
        fee_amount=Decimal("25.00"),
        category=CategoryFactory(description="Robotics"),
        merchant_account=MerchantAccountFactory(),
        opens_on=timezone.localdate() - dt.timedelta(days=1),
    )
    width = viewport["width"]
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, family.user.username)
        notice = page.locator("#lock-notice")
        assert notice.get_by_role(
            "heading", name="Documents and Activity sign-up are locked"
        ).is_visible()
        assert notice.get_by_text("Your family owes $141.75, more than the $100.00").is_visible()
        assert notice.get_by_text("To unlock them, pay at least $41.75.").is_visible()
        assert notice.get_by_text("Call the business office at 555-0100").is_visible()
        assert page.get_by_role("link", name="Documents").count() == 0
        assert page.get_by_role("heading", name="Open fees").first.is_visible()  # never locked

        page.goto(f"{live_server.url}/portal/students/{ben.pk}/activities/")
        assert page.get_by_role(
            "heading", name="Documents and Activity sign-up are locked"
        ).is_visible()
        assert page.get_by_role("button", name="Sign up").count() == 0

        # The family pays the chess club and the workbook: $79.25 owed, under $100.00.
        for fee in Fee.objects.filter(description__in=["Chess club", "Workbook set"]):
            payment_take(fee=fee, amount=fee.balance, method="card", origin=Origin())
        StudentVendorBalance.objects.filter(student=ben).update(balance=Decimal("20.00"))

        page.goto(f"{live_server.url}/portal/students/{ben.pk}/")
        assert page.locator("#lock-notice").count() == 0
        page.get_by_role("link", name="Documents").click()
        page.wait_for_load_state("load")
        page.screenshot(
            path=str(artifacts / f"portal-unlocked-documents-{width}.png"), full_page=True
        )
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Report card, term 1").click()
        download = download_info.value
        assert download.suggested_filename == "report-card-term-1.pdf"
        assert Path(download.path()).read_bytes() == b"%PDF-1.4 report card of Ben"
        assert (
            DocumentDownload.objects.filter(user=family.user, downloaded_as="guardian").count() == 1
        )

        page.goto(f"{live_server.url}/portal/students/{ben.pk}/activities/")
        button = page.get_by_role("button", name=f"Sign up {ben.first_name} · $25.00")
        button.click()
        page.wait_for_load_state("load")
        assert page.get_by_text(f"{ben.first_name} is signed up for Robotics club").is_visible()
        assert page.get_by_text("Signed up", exact=True).is_visible()
        page.screenshot(path=str(artifacts / f"portal-signed-up-{width}.png"), full_page=True)
        # The browser's "send again" (back, then the same form with the same token).
        page.go_back()
        page.go_back()
        page.wait_for_load_state("load")
        if page.get_by_role("button", name=f"Sign up {ben.first_name} · $25.00").count():
            page.get_by_role("button", name=f"Sign up {ben.first_name} · $25.00").click()
            page.wait_for_load_state("load")
        assert Fee.objects.filter(student=ben, description="Robotics club fee").count() == 1
        page.goto(f"{live_server.url}/portal/")
        assert row_of(page, "Robotics club fee").get_by_text("$25.00").first.is_visible()
        assert ActivitySignup.objects.filter(offer=offer, student=ben).count() == 1
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1366px"])
def test_a_payment_made_at_the_vendor_just_before_signing_in_is_on_the_first_page(
    live_server, make_family, browser, artifacts: Path, viewport, monkeypatch
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    box = Sandbox("communitypass")
    try:
        integration = integration_for(
            box, button_url="https://cp.example.org/pay", payments_pulled_at=None
        )
        fam = make_family(1)
        child = fam.children[0]
        fee = make_fee(student=child, description="Chess club", amount="30.00", fee_date=IN_SCOPE)
        engine.send_fees(integration=integration)
        # The parent pays at Community Pass, then signs in to FeeSync.
        box.control("pay", fee_ref=fee.reference, amount="30.00")

        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        try:
            sign_in(page, live_server.url, fam.user.username)
            page.screenshot(
                path=str(artifacts / f"portal-after-vendor-payment-{viewport['width']}.png"),
                full_page=True,
            )
            assert page.get_by_text(f"Nothing is owed for {child.first_name}").is_visible()
            assert page.locator(".summary__total").first.inner_text() == "$0.00"
            assert page.get_by_text("could not be checked just now").count() == 0
            page.locator("summary", has_text="Paid and closed fees").click()
            assert row_of(page, "Chess club").get_by_text("Paid", exact=True).is_visible()
        finally:
            context.close()
    finally:
        box.stop()
