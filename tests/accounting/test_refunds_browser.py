"""The refund queue and the deposit report in the browser (Chromium at 1366 and 390 px,
axe-core): a business-office office_clerk schedules a refund, finds it in the queue by status,
pays it from the office, voids it, and the deposit report shows the check out and back."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.accounting.models import Refund
from apps.fees.services import student_credit
from tests.browser.test_setup_e2e import assert_no_sideways_scroll, shoot
from tests.browser.test_sync_status_browser import pages
from tests.browser_support import axe_violations
from tests.factories import StudentFactory

from .refunds_support import give_credit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_office_schedules_pays_and_voids_a_refund_in_the_browser(
    browser: Any, live_server: Any, artifacts: Path, api: Any, office_clerk: Any
) -> None:
    base = live_server.url
    for page, name in pages(browser, base, office_clerk.username):
        student = StudentFactory(first_name="Grace", last_name=f"Hopper{name}")
        give_credit(api, student, "90.00", prefix=f"B{name}")
        page.goto(f"{base}/admin/accounting/refund/add/")
        assert axe_violations(page, "#content-main") == []
        page.locator("#id_student").select_option(str(student.pk))
        page.locator("#id_amount").fill("40.00")
        page.locator("#id_due_date").fill(timezone.localdate().isoformat())
        page.locator("#id_reason").fill("Overpayment")
        page.get_by_role("button", name="Schedule the refund").click()
        page.wait_for_url(re.compile(r"/admin/accounting/refund/\d+/change/"))
        assert "scheduled, due" in page.locator(".messagelist").inner_text()
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"refund-scheduled-{name}.png")

        page.goto(f"{base}/admin/accounting/refund/?status__exact=N")
        assert "Refund queue" in page.locator("h1").inner_text()
        rows = page.locator("#result_list tbody tr")
        assert f"Hopper{name}, Grace" in rows.first.inner_text()
        # The queue itself (the admin's own search box's "Show all" link is Django's).
        assert axe_violations(page, "#changelist-form") == []
        rows.first.locator("th a, td a").first.click()
        page.wait_for_url(re.compile(r"/admin/accounting/refund/\d+/change/"))
        page.get_by_role("link", name="Pay this refund from the office").click()
        page.wait_for_url(re.compile(r"/pay/$"))
        assert axe_violations(page, "#content-main") == []
        page.locator("#id_check_number").fill("7001")
        page.get_by_role("button", name="Record the refund check").click()
        assert "paid by check 7001" in page.locator(".messagelist").inner_text()
        assert "Processed (paid)" in page.locator("#content-main").inner_text()
        assert student_credit(student=student) == Decimal("50.00")

        page.get_by_role("link", name="Void this refund").click()
        page.wait_for_url(re.compile(r"/void/$"))
        page.locator("#id_reason").fill("Check never cashed")
        page.get_by_role("button", name="Void the refund").click()
        assert "credit again" in page.locator(".messagelist").inner_text()
        shoot(page, artifacts, f"refund-voided-{name}.png")
        assert student_credit(student=student) == Decimal("90.00")
        assert Refund.objects.filter(student=student, status="V").count() == 1

        page.goto(f"{base}/admin/accounting/glrelease/reports/deposits/")
        table = page.locator("#report").inner_text()
        assert "Check" in table
        assert axe_violations(page, "#content-main") == []
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"deposit-report-{name}.png")
