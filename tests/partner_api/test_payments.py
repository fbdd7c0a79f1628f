"""POST /api/student-accounting/ledger-payment-transactions over the real stack."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from apps.fees.models import LedgerEntry, StudentCredit
from apps.fees.selectors import ledger_report
from apps.partner_api.models import ApiCall
from tests.factories import StaffFactory, make_fee

from .conftest import PAYMENTS, payment

pytestmark = pytest.mark.django_db


def credit_of(student: Any) -> Decimal:
    row = StudentCredit.objects.filter(student=student).first()
    return row.amount if row else Decimal("0.00")


def test_payment_is_posted_to_the_students_card_as_credit(api, student):
    response = api.post(PAYMENTS, payment(student, "125.00"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["TransactionAmount"] == "125.00"
    assert body["UnappliedAmount"] == "125.00"
    assert body["IsReplay"] is False
    entry = LedgerEntry.objects.get(pk=body["StudentAccountTransactionId"])
    assert entry.fee_id is None and entry.kind == "payment" and entry.source == "partner_api"
    assert credit_of(student) == Decimal("125.00")
    assert ledger_report().ok


def test_payment_with_auto_apply_pays_the_oldest_due_fee_first(api, student, settings):
    settings.FEESYNC_AUTO_APPLY_CREDIT = True
    later = make_fee(student=student, amount="40.00", due_date=dt.date(2026, 11, 1))
    sooner = make_fee(student=student, amount="50.00", due_date=dt.date(2026, 10, 1))
    response = api.post(PAYMENTS, payment(student, "70.00"), format="json")
    assert response.status_code == 201, response.json()
    sooner.refresh_from_db()
    later.refresh_from_db()
    assert (sooner.status, sooner.balance) == ("paid", Decimal("0.00"))
    assert later.balance == Decimal("20.00")
    assert response.json()["UnappliedAmount"] == "0.00"
    assert sooner.version > 1  # the vendors in its scope are told, as for any payment
    assert ledger_report().ok


def test_same_vendor_transaction_id_is_recorded_once_and_answered_as_replay(api, student):
    first = api.post(PAYMENTS, payment(student, "10.00", "V-9"), format="json")
    again = api.post(PAYMENTS, payment(student, "10.00", "V-9"), format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["IsReplay"] is True
    ids = {first.json()["StudentAccountTransactionId"], again.json()["StudentAccountTransactionId"]}
    assert len(ids) == 1
    assert LedgerEntry.objects.filter(kind="payment").count() == 1


def test_vendor_transaction_id_is_per_api_user(api, student, integration, api_key):
    from rest_framework.test import APIClient

    from apps.partner_api.services import api_key_issue, api_user_create

    other = api_user_create(
        user=StaffFactory(username="partner-2"),
        integration=integration,
        groups=("API - Student Accounting",),
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_issue(api_user=other, name='x')[1]}")
    assert api.post(PAYMENTS, payment(student, "5.00", "SAME"), format="json").status_code == 201
    assert client.post(PAYMENTS, payment(student, "5.00", "SAME"), format="json").status_code == 201
    assert LedgerEntry.objects.filter(kind="payment").count() == 2


@pytest.mark.parametrize(
    ("prop", "value", "words"),
    [
        ("TransactionAmount", "12.345", "more than two decimal places"),
        ("TransactionAmount", "1e3", ""),
        ("TransactionAmount", "-5.00", "cannot be negative"),
        ("TransactionAmount", "0", "more than $0.00"),
        ("TransactionDate", "2026-09-15T10:30:00", "00:00:00"),
        ("TransactionDate", "15/09/2026", "not a date"),
        ("TransactionDate", "2026-02-30", "not a day of the calendar"),
        ("PaymentType", "Bitcoin", "not a valid choice"),
    ],
)
def test_bad_property_is_a_problem_document_naming_it(api, student, prop, value, words):
    body = payment(student)
    body[prop] = value
    response = api.post(PAYMENTS, body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400 and problem["title"]
    named = [e for e in problem["errors"] if e["property"] == prop]
    assert named and words in named[0]["detail"]
    assert not LedgerEntry.objects.filter(kind="payment").exists()


def test_float_json_amount_is_read_exactly(api, student):
    raw = (
        f'{{"StudentId": "{student.student_number}", "TransactionAmount": 19.99, '
        '"TransactionDate": "2026-09-15", "PaymentType": "Cash", "Description": "x", '
        '"VendorTransactionId": "F1"}'
    )
    response = api.post(PAYMENTS, raw, content_type="application/json")
    assert response.status_code == 201, response.json()
    assert LedgerEntry.objects.get(kind="payment").amount == Decimal("19.99")


def test_every_bad_property_is_named_at_once(api, student):
    body = {"StudentId": student.student_number, "TransactionAmount": "abc", "Extra": 1}
    problem = api.post(PAYMENTS, body, format="json").json()
    named = {e["property"] for e in problem["errors"]}
    assert "Extra" in named
    body.pop("Extra")
    problem = api.post(PAYMENTS, body, format="json").json()
    named = {e["property"] for e in problem["errors"]}
    assert {"TransactionAmount", "TransactionDate", "PaymentType", "Description"} <= named


def test_malformed_json_and_wrong_shapes_are_4xx_never_5xx(api, student):
    for raw in ["{", "[]", "null", '"x"', '{"TransactionAmount": NaN}', "{" * 5000]:
        response = api.post(PAYMENTS, raw, content_type="application/json")
        assert 400 <= response.status_code < 500, raw
        assert response["Content-Type"].startswith("application/problem+json")


def test_unknown_student_is_refused_naming_student_id(api, student):
    body = payment(student)
    body["StudentId"] = "no-such"
    response = api.post(PAYMENTS, body, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["property"] == "StudentId"


def test_check_needs_its_number(api, student):
    response = api.post(PAYMENTS, payment(student, PaymentType="Check"), format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["property"] == "CheckNumber"


def test_cashiering_school_requires_drawer_and_cashier(api, student):
    from apps.accounting.models import CashDrawer
    from apps.accounting.services.cashiering import session_open

    student.school.cashiering = True
    student.school.save()
    response = api.post(PAYMENTS, payment(student), format="json")
    assert response.status_code == 422
    assert {e["property"] for e in response.json()["errors"]} == {"CashDrawerId", "CashierUserId"}
    cashier = StaffFactory(username="cashier-1")
    drawer = CashDrawer.objects.create(school=student.school, name="Front office")
    # Part 2 (issue 14): the drawer and the cashier's session must be real.
    unknown = api.post(
        PAYMENTS,
        payment(student, CashDrawerId=drawer.pk + 99, CashierUserId=cashier.pk),
        format="json",
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["property"] == "CashDrawerId"
    no_session = api.post(
        PAYMENTS, payment(student, CashDrawerId=drawer.pk, CashierUserId=cashier.pk), format="json"
    )
    assert no_session.status_code == 422
    assert no_session.json()["errors"][0]["property"] == "CashierUserId"
    session = session_open(drawer=drawer, cashier=cashier)
    ok = api.post(
        PAYMENTS, payment(student, CashDrawerId=drawer.pk, CashierUserId=cashier.pk), format="json"
    )
    assert ok.status_code == 201, ok.json()
    entry = LedgerEntry.objects.get(kind="payment")
    posting = entry.api_posting
    assert (posting.cash_drawer_id, posting.cashier_user) == (drawer.pk, cashier)
    assert entry.booking.cash_session == session


# --- authentication and permissions -------------------------------------------------------


def test_signed_out_is_401_with_a_problem(student):
    from rest_framework.test import APIClient

    response = APIClient().post(PAYMENTS, payment(student), format="json")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/problem+json")
    assert "Basic" in response["WWW-Authenticate"]


def test_basic_auth_works_for_an_api_user(api_user, basic_client, student):
    response = basic_client("partner-t").post(PAYMENTS, payment(student), format="json")
    assert response.status_code == 201, response.json()


def test_wrong_password_and_bad_key_are_401(api_user, basic_client, student):
    from rest_framework.test import APIClient

    wrong = basic_client("partner-t", "wrong")
    assert wrong.post(PAYMENTS, payment(student), format="json").status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key not.a-key")
    assert client.post(PAYMENTS, payment(student), format="json").status_code == 401


def test_revoked_key_is_refused(api, api_user, student):
    api_user.keys.update(revoked=True)
    assert api.post(PAYMENTS, payment(student), format="json").status_code == 401


def test_staff_user_that_is_not_an_api_user_is_403(basic_client, student):
    StaffFactory(username="clerk-x")
    response = basic_client("clerk-x").post(PAYMENTS, payment(student), format="json")
    assert response.status_code == 403
    assert "not an API user" in response.json()["detail"]


def test_missing_permission_is_403_naming_it(api, api_user, student):
    api_user.user.groups.remove(Group.objects.get(name="API - Student Accounting"))
    response = api.post(PAYMENTS, payment(student), format="json")
    assert response.status_code == 403
    problem = response.json()
    assert problem["permission"] == "StudentAccounting.LedgerPaymentTransactions.Create"
    assert "StudentAccounting.LedgerPaymentTransactions.Create" in problem["detail"]
    assert not LedgerEntry.objects.exists()


def test_single_operation_permission_is_enough(api, api_user, student):
    from django.contrib.auth.models import Permission

    api_user.user.groups.clear()
    api_user.user.user_permissions.add(
        Permission.objects.get(codename="StudentAccounting.LedgerPaymentTransactions.Create")
    )
    assert api.post(PAYMENTS, payment(student), format="json").status_code == 201


def test_disabled_integration_is_403(api, integration, student):
    integration.enabled = False
    integration.save()
    response = api.post(PAYMENTS, payment(student), format="json")
    assert response.status_code == 403 and "switched off" in response.json()["detail"]


def test_refused_calls_are_logged_with_their_reason(api, student):
    api.post(PAYMENTS, payment(student, "abc"), format="json")
    api.post(PAYMENTS, payment(student, "5.00"), format="json")
    calls = list(ApiCall.objects.order_by("id"))
    assert [c.status_code for c in calls] == [400, 201]
    assert "TransactionAmount" in calls[0].reason


def test_ledger_check_passes_after_api_payments(api, student):
    make_fee(student=student, amount="30.00")
    for i in range(3):
        api.post(PAYMENTS, payment(student, "20.00", f"L{i}"), format="json")
    call_command("ledger_check")
