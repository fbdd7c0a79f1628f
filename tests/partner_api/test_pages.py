"""What staff and parents see of the partner API's postings: the ledger card, plans and
the manual-apply page on the student's admin page, the integration's dashboard section,
and the parent portal's upcoming installments."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from apps.fees.models import LedgerEntry, ManualApplication
from apps.fees.services.credit import manual_apply_flag
from tests.admin_helpers import csrf_client, submit
from tests.factories import GuardianFactory

from .conftest import PAYMENTS, PLANS, payment

pytestmark = pytest.mark.django_db


def plan_and_payment(api: Any, student: Any) -> dict[str, Any]:
    plan = api.post(
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
    ).json()
    api.post(
        PAYMENTS, payment(student, "125.00", "PG-1", UseNextScheduledPayment=True), format="json"
    )
    return plan


def test_student_page_shows_ledger_card_plans_and_history(api, student, district_admin):
    plan_and_payment(api, student)
    page = csrf_client(district_admin).get(
        reverse("admin:students_student_change", args=[student.pk])
    )
    text = page.content.decode()
    assert page.status_code == 200
    assert "Ledger card" in text and "On the account" in text and "$125.00" in text
    assert "Band trip plan" in text and "$75.00" in text and "Scheduled" in text
    assert "Payment of $125.00" in text  # the plan's history
    assert reverse("admin:students_student_manual_apply", args=[student.pk]) in text


def test_manual_apply_page_lists_flags_and_gives_one_back(api, student, district_admin):
    api.post(PAYMENTS, payment(student, "10.00", "MA-1"), format="json")
    entry = LedgerEntry.objects.get(kind="payment")
    manual_apply_flag(entries=[entry])
    url = reverse("admin:students_student_manual_apply", args=[student.pk])
    client = csrf_client(district_admin)
    assert "Give back to automatic application" in client.get(url).content.decode()
    response = submit(client, url, {"entry": str(entry.pk)}, follow=True)
    assert "back under automatic application" in response.content.decode()
    assert not ManualApplication.objects.exists()
    assert "Nothing of this student's is applied by hand" in client.get(url).content.decode()


def test_manual_apply_page_is_404_for_nobody(district_admin):
    client = csrf_client(district_admin)
    for bad in ["abc", "999999"]:
        assert client.get(f"/admin/students/student/{bad}/manual-apply/").status_code == 404


def test_integration_dashboard_shows_postings_and_refused_calls(
    api, student, integration, district_admin
):
    api.post(PAYMENTS, payment(student, "10.00", "D-1"), format="json")
    api.post(PAYMENTS, payment(student, "ten", "D-2"), format="json")
    page = csrf_client(district_admin).get(
        reverse("admin:vendors_integration_dashboard", args=[integration.pk])
    )
    text = page.content.decode()
    assert page.status_code == 200
    assert "Postings per day" in text and "partner-t" in text
    assert "Last error" in text and "TransactionAmount" in text


def test_parent_portal_shows_upcoming_installments_and_credit(api, student, client):
    guardian = GuardianFactory()
    guardian.students.add(student)
    plan_and_payment(api, student)
    client.force_login(guardian.user)
    text = client.get("/portal/").content.decode()
    assert "Payment plan: upcoming payments" in text
    assert "$75.00" in text  # the rest of the split installment
    assert "Credit on account: $125.00" in text  # no fee owed it: the student's credit
