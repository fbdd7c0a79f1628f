"""Issue 13's pages in Chromium (1366 and 390 px) against the live server, checked by
axe-core (no serious or critical violation): the student's ledger card and payment plans
on the student's admin page, the manual-apply page, the partner-API section of the
integration's dashboard, and the parent portal's plan installments. Screenshots go to
tests/artifacts/ for people to look at."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.fees.models import LedgerEntry
from apps.fees.services.credit import manual_apply_flag
from tests.browser.test_setup_e2e import assert_no_sideways_scroll
from tests.browser_support import (
    AXE_JS,
    artifacts_dir,
    axe_violations,
    launch_chromium,
    require_browser,
)
from tests.factories import GuardianFactory, StaffFactory

from .conftest import PAYMENTS, PLANS, payment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"
VIEWPORTS = [({"width": 1366, "height": 900}, "1366"), ({"width": 390, "height": 844}, "390")]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    require_browser(AXE_JS)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with launch_chromium() as chromium:
        yield chromium


def posted(api: Any, student: Any) -> None:
    """A plan of 100/100, a payment of 125 for its next installment (1 paid, 2 split 25 paid
    and 75 scheduled), a payment applied by hand and a refused call."""
    response = api.post(
        PLANS,
        {
            "StudentId": student.student_number,
            "Description": "Band trip plan",
            "ScheduledPayments": [
                {"Amount": "100.00", "ExpectedDate": "2026-10-01"},
                {"Amount": "100.00", "ExpectedDate": "2026-11-01"},
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = payment(student, "125.00", "BR-1", UseNextScheduledPayment=True)
    assert api.post(PAYMENTS, body, format="json").status_code == 201
    assert api.post(PAYMENTS, payment(student, "10.00", "BR-2"), format="json").status_code == 201
    manual_apply_flag(entries=[LedgerEntry.objects.get(external_id="BR-2")])
    assert api.post(PAYMENTS, payment(student, "ten", "BR-3"), format="json").status_code == 400


def fits(page: Any, selector: str) -> None:
    """Each of the pieces fits the window: no part of it sticks out on the right (a wide
    table may scroll inside its own box)."""
    wide = page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .map(e => e.id + ': ' + Math.round(e.getBoundingClientRect().right) + 'px')""",
        selector,
    )
    assert wide == [], f"sticks out of the {page.viewport_size['width']} px window: {wide}"


def check(page: Any, name: str, context: str = "body", whole_page: bool = True) -> None:
    """The page (or, on the student's page, whose older inlines are wide, the pieces)
    does not scroll sideways, and axe-core finds nothing serious in `context`."""
    page.screenshot(path=str(artifacts_dir() / name), full_page=True)
    if whole_page:
        assert_no_sideways_scroll(page)
    else:
        fits(page, context)
    assert axe_violations(page, context) == []


def test_staff_pieces_read_well_and_pass_axe(browser, live_server, api, student, integration):
    StaffFactory(username="district-b", groups=["District admin"])
    posted(api, student)
    base = live_server.url
    for viewport, size in VIEWPORTS:
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.goto(f"{base}/admin/login/")
        page.get_by_label("Username").fill("district-b")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/admin/")

        page.goto(f"{base}/admin/students/student/{student.pk}/change/")
        card = page.locator("#ledger-card")
        assert "Ledger card" in card.inner_text() and "$125.00" in card.inner_text()
        plans = page.locator("#payment-plans")
        assert "Band trip plan" in plans.inner_text() and "$75.00" in plans.inner_text()
        check(
            page,
            f"partner-student-ledger-{size}.png",
            "#ledger-card, #payment-plans",
            whole_page=False,
        )

        page.goto(f"{base}/admin/students/student/{student.pk}/manual-apply/")
        assert page.get_by_role("button", name="Give back to automatic application").count()
        check(page, f"partner-manual-apply-{size}.png")

        page.goto(f"{base}/admin/vendors/integration/{integration.pk}/dashboard/")
        section = page.locator("#partner-api")
        text = section.inner_text()
        assert "Postings per day" in text and "TransactionAmount" in text
        check(page, f"partner-dashboard-{size}.png", "#partner-api")
        context.close()


def test_portal_plan_installments_read_well_and_pass_axe(browser, live_server, api, student):
    guardian = GuardianFactory()
    guardian.students.add(student)
    guardian.user.set_password(PASSWORD)
    guardian.user.save()
    posted(api, student)
    base = live_server.url
    for viewport, size in VIEWPORTS:
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.goto(f"{base}/portal/login/")
        page.get_by_label("Username").fill(guardian.user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state("load")
        plan = page.locator(f"#plan-{student.pk}").locator("xpath=..")
        text = plan.inner_text()
        assert "Payment plan: upcoming payments" in text and "$75.00" in text
        check(page, f"partner-portal-plan-{size}.png")
        context.close()
