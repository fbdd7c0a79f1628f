"""The scheduled-refund cycle and unscheduled refunds over the real stack (URLconf, auth,
PostgreSQL): N → S → P by the vendor, S → N, P → V by staff, nothing else."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.accounting.models import EntryBooking, Refund, RefundChange
from apps.accounting.services.refunds import refund_pay, refund_void
from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import LedgerError, student_credit

from .refunds_support import SCHEDULED, STATUS, UNSCHEDULED, give_credit, schedule

pytestmark = pytest.mark.django_db


def select(api: Any, *ids: int, status: str = "S") -> Any:
    return api.patch(STATUS, {"RefundIds": list(ids), "Status": status}, format="json")


def test_a_refund_goes_n_to_s_to_p_and_is_paid_out_of_the_credit(
    api: Any, student: Any, office_clerk: Any
) -> None:
    give_credit(api, student, "60.00", "40.00")
    refund = schedule(student, "80.00", office_clerk)
    assert refund.status == "N"

    answer = select(api, refund.pk)
    assert answer.status_code == 200, answer.json()
    assert answer.json()["Refunds"][0]["Status"] == "S"

    posted = api.post(SCHEDULED, [{"RefundId": refund.pk, "PaymentType": "H"}], format="json")
    assert posted.status_code == 200, posted.json()
    result = posted.json()["Results"][0]
    assert result["IsSuccessful"] is True and result["Status"] == "P"
    # Drawn from both payments: two refund entries, 60 then 20.
    entries = LedgerEntry.objects.filter(pk__in=result["StudentAccountTransactionIds"])
    assert sorted(e.amount for e in entries) == [Decimal("20.00"), Decimal("60.00")]
    assert {e.kind for e in entries} == {"refund"}
    refund.refresh_from_db()
    assert refund.status == "P" and refund.entry_id == min(e.pk for e in entries)
    assert EntryBooking.objects.filter(refund=refund).count() == 2
    assert student_credit(student=student) == Decimal("20.00")
    assert [(c.from_status, c.to_status) for c in RefundChange.objects.filter(refund=refund)] == [
        ("", "N"),
        ("N", "S"),
        ("S", "P"),
    ]
    assert ledger_report().ok, ledger_report().breaches

    # Posting it again posts nothing and answers with the first posting.
    again = api.post(SCHEDULED, [{"RefundId": refund.pk}], format="json").json()["Results"][0]
    assert again["IsSuccessful"] is True and again["IsReplay"] is True
    assert LedgerEntry.objects.filter(kind="refund").count() == 2


def test_only_n_to_s_and_s_to_n_by_patch(api: Any, student: Any, office_clerk: Any) -> None:
    give_credit(api, student, "50.00")
    refund = schedule(student, "30.00", office_clerk)
    # S → N before it is selected: refused.
    refused = select(api, refund.pk, status="N")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["property"] == "RefundIds[0]"
    # P or V cannot be asked for.
    bad = select(api, refund.pk, status="P")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["property"] == "Status"
    assert select(api, refund.pk).status_code == 200
    # Selected twice: refused, nothing changes.
    assert select(api, refund.pk).status_code == 422
    # Back to N, and selected again.
    assert select(api, refund.pk, status="N").json()["Refunds"][0]["Status"] == "N"
    assert select(api, refund.pk).status_code == 200
    api.post(SCHEDULED, [{"RefundId": refund.pk}], format="json")
    # Paid: neither N nor S any more.
    assert select(api, refund.pk, status="N").status_code == 422
    assert select(api, refund.pk).status_code == 422
    refund.refresh_from_db()
    assert refund.status == "P"


def test_a_refund_not_selected_cannot_be_posted_as_paid(
    api: Any, student: Any, office_clerk: Any
) -> None:
    give_credit(api, student, "50.00")
    refund = schedule(student, "30.00", office_clerk)
    result = api.post(SCHEDULED, [{"RefundId": refund.pk}], format="json").json()["Results"][0]
    assert result["IsSuccessful"] is False
    assert "select it" in result["Errors"][0]["detail"]
    refund.refresh_from_db()
    assert refund.status == "N"
    assert not LedgerEntry.objects.filter(kind="refund").exists()


def test_a_selected_refund_cannot_be_paid_from_the_staff_side(
    api: Any, student: Any, office_clerk: Any
) -> None:
    give_credit(api, student, "50.00")
    refund = schedule(student, "30.00", office_clerk)
    select(api, refund.pk)
    with pytest.raises(LedgerError, match="cannot be paid from the staff side"):
        refund_pay(refund=refund, user=office_clerk)
    refund.refresh_from_db()
    assert refund.status == "S"


def test_staff_void_a_paid_refund_and_the_credit_comes_back(
    api: Any, student: Any, office_clerk: Any
) -> None:
    give_credit(api, student, "60.00", "40.00")
    refund = schedule(student, "80.00", office_clerk)
    # Not yet paid: cannot be voided.
    with pytest.raises(LedgerError, match="only a paid refund"):
        refund_void(refund=refund, user=office_clerk, reason="Check lost")
    select(api, refund.pk)
    api.post(SCHEDULED, [{"RefundId": refund.pk}], format="json")
    assert student_credit(student=student) == Decimal("20.00")

    refund_void(refund=refund, user=office_clerk, reason="Check never cashed")
    refund.refresh_from_db()
    assert refund.status == "V" and refund.void_entry_id is not None
    voids = LedgerEntry.objects.filter(reverses__kind="refund")
    assert sorted(v.amount for v in voids) == [Decimal("20.00"), Decimal("60.00")]
    assert student_credit(student=student) == Decimal("100.00")
    assert ledger_report().ok, ledger_report().breaches
    # V is final.
    with pytest.raises(LedgerError):
        refund_void(refund=refund, user=office_clerk, reason="again")
    assert select(api, refund.pk).status_code == 422


def test_a_batch_with_one_bad_element_posts_the_others(
    api: Any, student: Any, office_clerk: Any
) -> None:
    give_credit(api, student, "100.00")
    good = [schedule(student, "10.00", office_clerk) for _ in range(3)]
    unselected = schedule(student, "10.00", office_clerk)
    select(api, *[r.pk for r in good])
    body = [
        {"RefundId": good[0].pk},
        {"RefundId": unselected.pk},
        {"RefundId": good[1].pk, "PaymentType": "Z"},
        {"RefundId": 999999},
        {"RefundId": good[2].pk, "BankAccountId": 424242},
        {"RefundId": good[1].pk, "PaymentType": "E"},
        {"RefundId": good[2].pk, "TransactionDate": "1926-01-01"},
    ]
    answer = api.post(SCHEDULED, body, format="json")
    assert answer.status_code == 200, answer.json()
    results = answer.json()["Results"]
    assert [r["IsSuccessful"] for r in results] == [True, False, False, False, False, True, False]
    assert results[6]["Errors"][0]["property"] == "[6].TransactionDate"
    assert results[2]["Errors"][0]["property"] == "[2].PaymentType"
    assert "No refund has the id 999999" in results[3]["Errors"][0]["detail"]
    assert results[4]["Errors"][0]["property"] == "[4].BankAccountId"
    assert answer.json()["SucceededCount"] == 2 and answer.json()["FailedCount"] == 5
    statuses = dict(Refund.objects.values_list("pk", "status"))
    assert [statuses[r.pk] for r in good] == ["P", "P", "S"]
    assert statuses[unselected.pk] == "N"
    assert student_credit(student=student) == Decimal("80.00")
    assert ledger_report().ok


def test_a_batch_element_the_credit_cannot_pay_fails_alone(
    api: Any, student: Any, office_clerk: Any
) -> None:
    give_credit(api, student, "50.00")
    first = schedule(student, "30.00", office_clerk)
    second = schedule(student, "20.00", office_clerk)
    select(api, first.pk, second.pk)
    # The family's credit was refunded elsewhere meanwhile.
    api.post(
        UNSCHEDULED,
        {
            "StudentId": student.student_number,
            "TransactionAmount": "25.00",
            "TransactionDate": "2026-09-15",
            "PaymentType": "H",
            "Description": "Refund check",
            "VendorTransactionId": "U-1",
        },
        format="json",
    )
    results = api.post(
        SCHEDULED, [{"RefundId": first.pk}, {"RefundId": second.pk}], format="json"
    ).json()["Results"]
    assert [r["IsSuccessful"] for r in results] == [False, True]
    assert "credit" in results[0]["Errors"][0]["detail"]
    assert student_credit(student=student) == Decimal("5.00")
    assert ledger_report().ok


def test_an_unscheduled_refund_is_paid_out_of_the_credit_once(api: Any, student: Any) -> None:
    give_credit(api, student, "40.00")
    body = {
        "StudentId": student.student_number,
        "TransactionAmount": "15.00",
        "TransactionDate": "2026-09-15T00:00:00",
        "PaymentType": "H",
        "Description": "Refund check 1001",
        "VendorTransactionId": "REF-1",
        "CheckNumber": "1001",
    }
    first = api.post(UNSCHEDULED, body, format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["CreditAmount"] == "25.00"
    assert not Refund.objects.exists()
    again = api.post(UNSCHEDULED, body, format="json")
    assert again.status_code == 200 and again.json()["IsReplay"] is True
    assert LedgerEntry.objects.filter(kind="refund").count() == 1
    too_much = api.post(
        UNSCHEDULED,
        {**body, "VendorTransactionId": "REF-2", "TransactionAmount": "30.00"},
        format="json",
    )
    assert too_much.status_code == 422
    assert too_much.json()["errors"][0]["property"] == "TransactionAmount"
    assert "credit" in too_much.json()["detail"]
    assert ledger_report().ok


def test_each_operation_needs_its_permission(
    student: Any, office_clerk: Any, integration: Any, basic_client: Any
) -> None:
    from apps.partner_api.services import api_user_create
    from tests.factories import StaffFactory

    user = StaffFactory(username="no-groups")
    user.set_password("pw-for-tests-1")
    user.save()
    api_user_create(user=user, integration=integration)
    client = basic_client("no-groups")
    answer = client.patch(STATUS, {"RefundIds": [1], "Status": "S"}, format="json")
    assert answer.status_code == 403
    assert answer.json()["permission"] == "StudentAccounting.ScheduledRefundsStatus.Update"
    answer = client.post(SCHEDULED, [{"RefundId": 1}], format="json")
    assert answer.json()["permission"] == (
        "StudentAccounting.LedgerScheduledRefundTransactions.Create"
    )


def test_a_batch_retried_with_its_idempotency_key_is_replayed(
    api: Any, student: Any, office_clerk: Any
) -> None:
    give_credit(api, student, "50.00")
    refund = schedule(student, "30.00", office_clerk)
    select(api, refund.pk)
    body = [{"RefundId": refund.pk}]
    first = api.post(SCHEDULED, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    again = api.post(SCHEDULED, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    other = api.post(SCHEDULED, [{"RefundId": 5}], format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert other.status_code == 422
    assert LedgerEntry.objects.filter(kind="refund").count() == 1


def test_an_empty_or_non_array_batch_is_a_400(api: Any) -> None:
    for body in ([], {"RefundId": 1}):
        answer = api.post(SCHEDULED, body, format="json")
        assert answer.status_code == 400
        assert answer.json()["errors"][0]["property"] == "(body)"
