"""Payment plans and installment payments: the contract's worked examples, replacement of
the schedule, and a property test over any sequence of payments and replacements."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.fees.models import LedgerEntry, PaymentPlan, ScheduledPayment
from apps.fees.selectors import ledger_report

from .conftest import PAYMENTS, PLANS, payment

pytestmark = pytest.mark.django_db

D1, D2, D3 = "2026-10-01", "2026-11-01", "2026-12-01"


def make_plan(api: Any, student: Any, amounts: list[str] = ["100.00"] * 3) -> dict[str, Any]:
    dates = [D1, D2, D3, "2027-01-01", "2027-02-01", "2027-03-01"]
    body = {
        "StudentId": student.student_number,
        "Description": "Tuition plan",
        "ScheduledPayments": [
            {"Amount": a, "ExpectedDate": dates[i]} for i, a in enumerate(amounts)
        ],
        "IsInterestBearing": True,
        "InterestRate": "4.5",
    }
    response = api.post(PLANS, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def schedule(plan_id: int) -> list[tuple[str, str, str]]:
    return [
        (s.status, f"{s.amount:.2f}", s.expected_date.isoformat())
        for s in ScheduledPayment.objects.filter(plan_id=plan_id).order_by("expected_date", "id")
    ]


def test_plan_is_created_with_its_schedule_and_terms(api, student):
    plan = make_plan(api, student)
    assert plan["TotalAmount"] == "300.00" and plan["ScheduledAmount"] == "300.00"
    assert plan["Terms"] == {"IsInterestBearing": True, "InterestRate": "4.5000"}
    assert [s["Status"] for s in plan["ScheduledPayments"]] == ["S", "S", "S"]


def test_worked_example_125_on_installment_1(api, student):
    plan = make_plan(api, student)
    first = plan["ScheduledPayments"][0]["ScheduledDisbursementId"]
    body = payment(student, "125.00", "W1", ScheduledDisbursementId=first)
    response = api.post(PAYMENTS, body, format="json")
    assert response.status_code == 201, response.json()
    assert schedule(plan["PaymentPlanId"]) == [
        ("P", "100.00", D1),
        ("P", "25.00", D2),
        ("S", "75.00", D2),
        ("S", "100.00", D3),
    ]
    paid = response.json()["ScheduledPayments"]
    assert [(s["Status"], s["Amount"]) for s in paid] == [("P", "100.00"), ("P", "25.00")]
    assert PaymentPlan.objects.get().total == Decimal("300.00")
    assert ledger_report().ok


def test_worked_example_75_on_installment_1(api, student):
    plan = make_plan(api, student)
    body = payment(student, "75.00", "W2", UseNextScheduledPayment=True)
    assert api.post(PAYMENTS, body, format="json").status_code == 201
    assert schedule(plan["PaymentPlanId"]) == [
        ("P", "75.00", D1),
        ("S", "25.00", D1),
        ("S", "100.00", D2),
        ("S", "100.00", D3),
    ]
    assert ledger_report().ok


def test_next_scheduled_payment_is_the_earliest_one(api, student):
    plan = make_plan(api, student)
    for i in range(2):
        api.post(
            PAYMENTS,
            payment(student, "100.00", f"N{i}", UseNextScheduledPayment=True),
            format="json",
        )
    assert [s[0] for s in schedule(plan["PaymentPlanId"])] == ["P", "P", "S"]


def test_paid_installment_cannot_be_paid_again(api, student):
    plan = make_plan(api, student)
    first = plan["ScheduledPayments"][0]["ScheduledDisbursementId"]
    api.post(
        PAYMENTS, payment(student, "100.00", "A", ScheduledDisbursementId=first), format="json"
    )
    response = api.post(
        PAYMENTS, payment(student, "100.00", "B", ScheduledDisbursementId=first), format="json"
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["property"] == "ScheduledDisbursementId"
    assert LedgerEntry.objects.filter(kind="payment").count() == 1


def test_installment_of_another_student_is_refused(api, student):
    from tests.factories import StudentFactory

    plan = make_plan(api, StudentFactory())
    first = plan["ScheduledPayments"][0]["ScheduledDisbursementId"]
    response = api.post(
        PAYMENTS, payment(student, "10.00", "X", ScheduledDisbursementId=first), format="json"
    )
    assert response.status_code == 422
    assert not LedgerEntry.objects.filter(kind="payment").exists()


def test_patch_with_removal_replaces_scheduled_but_never_paid(api, student):
    plan = make_plan(api, student)
    first = plan["ScheduledPayments"][0]["ScheduledDisbursementId"]
    api.post(
        PAYMENTS, payment(student, "100.00", "P1", ScheduledDisbursementId=first), format="json"
    )
    response = api.patch(
        PLANS,
        {
            "PaymentPlanId": plan["PaymentPlanId"],
            "IsScheduledPaymentsRemoved": True,
            "ScheduledPayments": [{"Amount": "50.00", "ExpectedDate": "2027-01-15"}],
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert schedule(plan["PaymentPlanId"]) == [("P", "100.00", D1), ("S", "50.00", "2027-01-15")]
    assert response.json()["TotalAmount"] == "150.00"
    history = list(PaymentPlan.objects.get().changes.values_list("what", flat=True))
    assert history[-1].startswith("Scheduled payments replaced: 2 removed, 1 added")


def test_patch_without_removal_adds(api, student):
    plan = make_plan(api, student, ["100.00"])
    response = api.patch(
        PLANS,
        {
            "PaymentPlanId": plan["PaymentPlanId"],
            "ScheduledPayments": [{"Amount": "20.00", "ExpectedDate": D2}],
        },
        format="json",
    )
    assert response.json()["TotalAmount"] == "120.00"


def test_patch_of_unknown_plan_is_404(api):
    response = api.patch(PLANS, {"PaymentPlanId": 999999}, format="json")
    assert response.status_code == 404
    assert response.json()["errors"][0]["property"] == "PaymentPlanId"


def test_bad_installment_is_named_by_its_index(api, student):
    body = {
        "StudentId": student.student_number,
        "ScheduledPayments": [
            {"Amount": "10.00", "ExpectedDate": D1},
            {"Amount": "ten", "ExpectedDate": "2026-10-01T08:00:00"},
        ],
    }
    response = api.post(PLANS, body, format="json")
    assert response.status_code == 400
    named = {e["property"] for e in response.json()["errors"]}
    assert named == {"ScheduledPayments[1].Amount", "ScheduledPayments[1].ExpectedDate"}
    assert not PaymentPlan.objects.exists()


def test_plan_operations_need_the_plan_permission(api, api_user, student):
    from django.contrib.auth.models import Group

    api_user.user.groups.remove(Group.objects.get(name="API - Student Payment Plan"))
    response = api.post(PLANS, {"StudentId": student.student_number}, format="json")
    assert response.status_code == 403
    assert response.json()["permission"] == "StudentPaymentPlan.StudentPaymentPlan.Create"
    response = api.patch(PLANS, {"PaymentPlanId": 1}, format="json")
    assert response.json()["permission"] == "StudentPaymentPlan.StudentPaymentPlan.Update"


# --- the property ---------------------------------------------------------------------------

cents = st.integers(min_value=1, max_value=40_000).map(lambda c: Decimal(c) / 100)
step = st.one_of(
    st.tuples(st.just("pay_next"), cents),
    st.tuples(st.just("pay_nth"), st.integers(0, 8), cents),
    st.tuples(st.just("replace"), st.lists(cents, min_size=0, max_size=4)),
    st.tuples(st.just("add"), st.lists(cents, min_size=1, max_size=2)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_any_sequence_keeps_paid_installments_and_the_total(api, student, steps):
    plan = make_plan(api, student)
    plan_id = plan["PaymentPlanId"]
    paid_before: dict[int, tuple[Any, ...]] = {}
    for n, s in enumerate(steps):
        vid = f"H{plan_id}-{n}"
        scheduled = list(
            ScheduledPayment.objects.filter(plan_id=plan_id, status="S").order_by("id")
        )
        if s[0] == "pay_next" and scheduled:
            api.post(
                PAYMENTS,
                payment(
                    student, str(s[1]), vid, UseNextScheduledPayment=True, PaymentPlanId=plan_id
                ),
                format="json",
            )
        elif s[0] == "pay_nth" and scheduled:
            target = scheduled[s[1] % len(scheduled)].pk
            r = api.post(
                PAYMENTS,
                payment(student, str(s[2]), vid, ScheduledDisbursementId=target),
                format="json",
            )
            assert r.status_code == 201, r.json()
        elif s[0] in ("replace", "add"):
            body: dict[str, Any] = {
                "PaymentPlanId": plan_id,
                "IsScheduledPaymentsRemoved": s[0] == "replace",
                "ScheduledPayments": [
                    {
                        "Amount": str(a),
                        "ExpectedDate": (dt.date(2027, 1, 1) + dt.timedelta(days=i)).isoformat(),
                    }
                    for i, a in enumerate(s[1])
                ],
            }
            assert api.patch(PLANS, body, format="json").status_code == 200
        rows = list(ScheduledPayment.objects.filter(plan_id=plan_id))
        # Paid installments never change once paid.
        for row in rows:
            if row.pk in paid_before:
                assert (row.status, row.amount, row.expected_date, row.payment_id) == paid_before[
                    row.pk
                ]
        assert set(paid_before) <= {r.pk for r in rows}
        paid_before = {
            r.pk: (r.status, r.amount, r.expected_date, r.payment_id)
            for r in rows
            if r.status == "P"
        }
        total = PaymentPlan.objects.get(pk=plan_id).total
        assert sum((r.amount for r in rows if r.status in "PS"), Decimal("0")) == total
    assert ledger_report().ok


@pytest.mark.ledger_breach
def test_ledger_check_finds_a_plan_whose_total_is_off(api, student):
    plan = make_plan(api, student)
    PaymentPlan.objects.filter(pk=plan["PaymentPlanId"]).update(total=Decimal("299.00"))
    report = ledger_report()
    assert [b.check for b in report.breaches] == ["plan_total"]
    assert report.counts["installments"] == 3


@pytest.mark.ledger_breach
def test_ledger_check_finds_installments_paid_beyond_their_payment(api, student):
    plan = make_plan(api, student)
    first = plan["ScheduledPayments"][0]["ScheduledDisbursementId"]
    api.post(
        PAYMENTS, payment(student, "100.00", "Q", ScheduledDisbursementId=first), format="json"
    )
    entry = LedgerEntry.objects.get(kind="payment")
    ScheduledPayment.objects.filter(status="S").update(status="P", payment=entry)
    assert "installment_paid" in {b.check for b in ledger_report().breaches}


def test_seed_1_a_retry_of_the_payment_that_took_the_last_installment_is_a_replay(api, student):
    """simulate --seed 1 (step 1190): a payment with UseNextScheduledPayment paid the plan's
    last installment; the vendor's retry of it (same VendorTransactionId, a new
    Idempotency-Key) was told 422 "no scheduled payment left", as if it had failed."""
    plan = make_plan(api, student, ["40.00"])
    body = payment(
        student,
        "40.00",
        "LAST-1",
        UseNextScheduledPayment=True,
        PaymentPlanId=plan["PaymentPlanId"],
    )
    first = api.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201, first.json()
    again = api.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert again.status_code == 200, again.json()
    assert again.json()["IsReplay"] is True
    assert (
        again.json()["StudentAccountTransactionId"] == first.json()["StudentAccountTransactionId"]
    )
    assert LedgerEntry.objects.filter(external_id="LAST-1").count() == 1
    # A new payment for the finished plan is still refused, naming why.
    other = api.post(
        PAYMENTS,
        payment(student, "5.00", "LAST-2", UseNextScheduledPayment=True),
        format="json",
    )
    assert other.status_code == 422
    assert other.json()["errors"][0]["property"] == "UseNextScheduledPayment"
