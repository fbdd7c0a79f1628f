"""PostAccountTransactionPayment: an unscheduled payment to a fund source, tied to the
student award it creates once and reuses, over the real URLconf, auth and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from apps.accounting.models import Bank, BankAccount, EntryBooking, StudentAward
from apps.fees.models import LedgerEntry
from apps.fees.services import student_credit
from tests.factories import SchoolFactory, StudentFactory, make_fee

from .conftest import COMMAND, command

pytestmark = pytest.mark.django_db


@pytest.fixture
def body(period: Any, academic_year: Any, fund: Any, bank_account: Any) -> dict[str, Any]:
    return command(period, academic_year, fund, bank_account)


def test_unscheduled_payment_creates_the_award_once_and_reuses_it(accounts_api, body, period, fund):
    first = accounts_api.post(COMMAND, {"payload": body}, format="json")
    assert first.status_code == 201, first.json()
    data = first.json()["payload"]["data"]
    assert data["IsNewStudentAward"] is True
    award = StudentAward.objects.get()
    assert (award.enrollment_period, award.fund_source, award.award_year) == (
        period,
        fund,
        "2026-27",
    )
    assert data["StudentAwardId"] == award.pk
    second = accounts_api.post(COMMAND, {**body, "TransactionAmount": "15.00"}, format="json")
    assert second.status_code == 201, second.json()
    assert second.json()["payload"]["data"]["IsNewStudentAward"] is False
    assert second.json()["payload"]["data"]["StudentAwardId"] == award.pk
    assert StudentAward.objects.count() == 1
    bookings = EntryBooking.objects.order_by("entry_id")
    assert [(b.student_award_id, b.entry.amount) for b in bookings] == [
        (award.pk, Decimal("40.00")),
        (award.pk, Decimal("15.00")),
    ]


def test_another_award_year_or_fund_source_gets_its_own_award(accounts_api, body, fund):
    from apps.accounting.models import FundSource

    other = FundSource.objects.create(code="PELL", name="Pell grant")
    assert accounts_api.post(COMMAND, body, format="json").status_code == 201
    assert (
        accounts_api.post(COMMAND, {**body, "AwardYear": "2025-26"}, format="json").status_code
        == 201
    )
    assert (
        accounts_api.post(COMMAND, {**body, "FundSourceId": other.pk}, format="json").status_code
        == 201
    )
    assert sorted(StudentAward.objects.values_list("fund_source__code", "award_year")) == [
        ("PARENT", "2025-26"),
        ("PARENT", "2026-27"),
        ("PELL", "2026-27"),
    ]


def test_the_payment_is_on_the_card_booked_and_auto_applied(
    accounts_api, body, student, bank_account
):
    fee = make_fee(student=student, amount="25.00")
    with override_settings(FEESYNC_AUTO_APPLY_CREDIT=True):
        response = accounts_api.post(COMMAND, body, format="json")
    assert response.status_code == 201, response.json()
    entry = LedgerEntry.objects.get(kind="payment")
    assert (entry.student, entry.amount, entry.method, entry.fee) == (
        student,
        Decimal("40.00"),
        "cash",
        None,
    )
    fee.refresh_from_db()
    assert fee.balance == Decimal("0.00")
    assert student_credit(student=student) == Decimal("15.00")
    booking = entry.booking
    assert (booking.business_date, booking.payment_type, booking.bank_account) == (
        dt.date(2026, 9, 15),
        "C",
        bank_account,
    )
    assert booking.cash_session is None
    assert entry.api_posting.operation == "StudentAccounts.StudentAccountTransaction.New"


def test_every_missing_property_is_named_at_once(accounts_api):
    response = accounts_api.post(COMMAND, {"payload": {"Description": "x"}}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    named = {e["property"] for e in response.json()["errors"]}
    assert named == {
        "AcademicYearSequence",
        "AwardYear",
        "BankAccountId",
        "FundSourceId",
        "PaymentMode",
        "PaymentType",
        "StudentAcademicYearId",
        "StudentEnrollmentPeriodId",
        "StudentId",
        "TransactionAmount",
        "TransactionDate",
    }


def test_bad_shapes_and_bad_records_are_named_in_one_answer(accounts_api, body):
    bad = {
        **body,
        "AwardYear": "2026-28",
        "PaymentMode": 1,
        "PaymentType": "X",
        "TransactionDate": "2026-09-15T10:30:00",
        "FundSourceId": 999999,
        "BankAccountId": 999998,
        "AcademicYearSequence": 3,
    }
    response = accounts_api.post(COMMAND, bad, format="json")
    assert response.status_code == 400
    errors = {e["property"]: e["detail"] for e in response.json()["errors"]}
    assert set(errors) == {
        "AwardYear",
        "PaymentMode",
        "PaymentType",
        "TransactionDate",
        "FundSourceId",
        "BankAccountId",
        "AcademicYearSequence",
    }
    assert "00:00:00" in errors["TransactionDate"]
    assert "must be 2" in errors["PaymentMode"]
    assert "2026-27" in errors["AwardYear"]
    assert not LedgerEntry.objects.exists() and not StudentAward.objects.exists()


def test_records_of_another_student_are_refused(accounts_api, body, period, academic_year):
    other = StudentFactory(school=period.school)
    response = accounts_api.post(
        COMMAND, {**body, "StudentId": other.student_number}, format="json"
    )
    assert response.status_code == 422
    named = {e["property"] for e in response.json()["errors"]}
    assert named == {"StudentEnrollmentPeriodId", "StudentAcademicYearId"}


def test_the_bank_account_must_be_at_a_bank_of_the_enrollment_periods_school(accounts_api, body):
    elsewhere = Bank.objects.create(school=SchoolFactory(name="Lincoln Elementary"), name="B")
    account = BankAccount.objects.create(bank=elsewhere, name="Lincoln operating")
    response = accounts_api.post(COMMAND, {**body, "BankAccountId": account.pk}, format="json")
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["property"] == "BankAccountId"
    assert "Lincoln Elementary" in error["detail"] and "Jefferson High School" in error["detail"]
    assert not LedgerEntry.objects.exists()


def test_is_new_payment_successful_false_posts_nothing(accounts_api, body):
    response = accounts_api.post(COMMAND, {**body, "IsNewPaymentSuccessful": 0}, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["property"] == "IsNewPaymentSuccessful"
    assert not LedgerEntry.objects.exists()


@override_settings(FEESYNC_REQUIRE_TERM_CODES=True)
def test_term_required_unless_ignore_term_required(accounts_api, body):
    refused = accounts_api.post(COMMAND, body, format="json")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["property"] == "TermId"
    assert accounts_api.post(COMMAND, {**body, "TermId": "FA26"}, format="json").status_code == 201
    ignored = accounts_api.post(COMMAND, {**body, "IgnoreTermRequired": 1}, format="json")
    assert ignored.status_code == 201


def test_a_vendor_transaction_id_is_posted_once(accounts_api, body):
    first = accounts_api.post(COMMAND, {**body, "VendorTransactionId": "U-1"}, format="json")
    again = accounts_api.post(COMMAND, {**body, "VendorTransactionId": "U-1"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["payload"]["data"]["IsReplay"] is True
    assert (
        again.json()["payload"]["data"]["StudentAccountTransactionId"]
        == (first.json()["payload"]["data"]["StudentAccountTransactionId"])
    )
    assert LedgerEntry.objects.filter(kind="payment").count() == 1


def test_idempotency_key_replays_the_first_answer(accounts_api, body):
    headers = {"HTTP_IDEMPOTENCY_KEY": "cmd-key-1"}
    first = accounts_api.post(COMMAND, body, format="json", **headers)
    again = accounts_api.post(COMMAND, body, format="json", **headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert LedgerEntry.objects.filter(kind="payment").count() == 1
    other = accounts_api.post(
        COMMAND, {**body, "TransactionAmount": "1.00"}, format="json", **headers
    )
    assert other.status_code == 422


def test_the_permission_is_named_when_missing(api, body):
    response = api.post(COMMAND, body, format="json")
    assert response.status_code == 403
    assert response.json()["permission"] == "StudentAccounts.StudentAccountTransaction.New"


def test_every_property_of_the_command_is_documented_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"][COMMAND]["post"]
    assert "StudentAccounts.StudentAccountTransaction.New" in operation["description"]
    components = schema["components"]["schemas"]
    names = [
        "PostAccountTransactionPaymentInRequest",
        "AccountTransactionPaymentOut",
        "PostAccountTransactionPaymentCommandRequest",
        "AccountTransactionPaymentResult",
    ]
    for name in names:
        properties = components[name]["properties"]
        undocumented = [
            p
            for p, spec in properties.items()
            if not (spec.get("description") or "$ref" in spec or spec.get("allOf"))
        ]
        assert not undocumented, (name, undocumented)
    request = components["PostAccountTransactionPaymentInRequest"]
    assert set(request["required"]) == {
        "AcademicYearSequence",
        "AwardYear",
        "BankAccountId",
        "Description",
        "FundSourceId",
        "PaymentMode",
        "PaymentType",
        "StudentAcademicYearId",
        "StudentEnrollmentPeriodId",
        "StudentId",
        "TransactionAmount",
        "TransactionDate",
    }
