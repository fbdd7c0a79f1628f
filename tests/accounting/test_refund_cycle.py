"""The refund cycle end to end, as a district and a vendor run it: a office_clerk schedules refunds
in the admin, the vendor finds the ones due, selects them, posts them as paid; the refund
queue, the student's ledger card and the deposit report agree. Then the office pays one
itself and voids one, through the same pages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounting.models import Bank, BankAccount, FundSource, Refund
from apps.fees.selectors import ledger_card, ledger_report
from apps.fees.services import student_credit
from tests.factories import StudentFactory

from .refunds_support import SCHEDULED, STATUS, give_credit

pytestmark = pytest.mark.django_db


def test_the_vendor_refund_cycle_and_the_office_agree(
    api: Any, api_user: Any, office_clerk: Any
) -> None:
    today = timezone.localdate()
    office = Client()
    office.force_login(office_clerk)
    pell = FundSource.objects.create(code="PELL", name="Pell grant")
    families = [StudentFactory() for _ in range(3)]
    bank = Bank.objects.create(school=families[0].school, name="First Bank")
    account = BankAccount.objects.create(bank=bank, name="Refunds account")
    for i, student in enumerate(families):
        give_credit(api, student, "120.00", prefix=f"F{i}")

    # The office_clerk schedules three refunds in the admin: two due, one next month.
    add = reverse("admin:accounting_refund_add")
    assert office.get(add).status_code == 200
    for student, amount, due in [
        (families[0], "100.00", today),
        (families[1], "45.50", today - timedelta(days=3)),
        (families[2], "60.00", today + timedelta(days=30)),
    ]:
        done = office.post(
            add,
            {
                "student": student.pk,
                "amount": amount,
                "due_date": due.isoformat(),
                "fund_source": pell.pk,
                "reason": "Overpayment",
            },
            follow=True,
        )
        assert "scheduled" in done.content.decode(), done.content.decode()[:2000]
    # More than the credit not yet scheduled is refused on the form.
    too_much = office.post(
        add,
        {
            "student": families[0].pk,
            "amount": "30.00",
            "due_date": today.isoformat(),
            "reason": "Again",
        },
    )
    assert "more than" in too_much.content.decode()
    assert Refund.objects.count() == 3

    # The vendor queries the refunds due for its fund source, over OData.
    api_user.user.groups.add(Group.objects.get(name="API - Student Accounts"))
    feed = api.get(
        "/api/odata/Refunds",
        {
            "$filter": f"Status eq 'N' and DueDate le {today.isoformat()} "
            f"and FundSourceId eq {pell.pk}",
            "$orderby": "RefundId",
        },
    )
    assert feed.status_code == 200, feed.content
    due = [row["RefundId"] for row in feed.json()["value"]]
    assert len(due) == 2

    selected = api.patch(STATUS, {"RefundIds": due, "Status": "S"}, format="json")
    assert selected.status_code == 200
    queue = office.get(reverse("admin:accounting_refund_changelist"), {"status__exact": "S"})
    assert queue.context["cl"].result_count == 2
    posted = api.post(
        SCHEDULED,
        [{"RefundId": pk, "PaymentType": "H", "BankAccountId": account.pk} for pk in due],
        format="json",
    ).json()
    assert posted["SucceededCount"] == 2 and posted["FailedCount"] == 0

    # The queue: two paid, one still not processed.
    queue = office.get(reverse("admin:accounting_refund_changelist"), {"status__exact": "P"})
    assert sorted(r.pk for r in queue.context["cl"].result_list) == due
    detail = office.get(reverse("admin:accounting_refund_change", args=[due[0]]))
    assert "Selected for processing" in detail.content.decode()
    # The card: each family's refund entries equal its refund, and the credit is what is left.
    for student, amount in [(families[0], Decimal("100.00")), (families[1], Decimal("45.50"))]:
        refunds = [
            line.entry.amount
            for line in ledger_card(student=student)
            if line.entry.kind == "refund"
        ]
        assert sum(refunds) == amount
        assert student_credit(student=student) == Decimal("120.00") - amount
        page = office.get(reverse("admin:students_student_change", args=[student.pk]))
        assert page.status_code == 200
    # The deposit report: the refunds account shows 145.50 of checks out.
    report = office.get(reverse("admin:accounting_deposit_report"))
    rows = [r for r in report.context["report"].rows if r[1] == "Refunds account"]
    assert rows == [
        [
            today,
            "Refunds account",
            "Check",
            Decimal("0.00"),
            Decimal("145.50"),
            Decimal("-145.50"),
            2,
            0,
        ]
    ]

    # The office pays the third (not selected) itself, then voids the first.
    third = Refund.objects.get(status="N")
    pay = reverse("admin:accounting_refund_pay", args=[third.pk])
    assert office.get(pay).status_code == 200
    paid = office.post(pay, {"check_number": "5001", "bank_account": account.pk}, follow=True)
    assert "paid by check 5001" in paid.content.decode()
    void = reverse("admin:accounting_refund_void", args=[due[0]])
    voided = office.post(void, {"reason": "Check never cashed"}, follow=True)
    assert "is the student&#x27;s credit again" in voided.content.decode()
    statuses = dict(Refund.objects.values_list("pk", "status"))
    assert statuses == {due[0]: "V", due[1]: "P", third.pk: "P"}
    assert student_credit(student=families[0]) == Decimal("120.00")
    refunds = office.get(
        reverse("admin:accounting_refund_report"),
        {
            "start": (today - timedelta(days=10)).isoformat(),
            "end": (today + timedelta(days=40)).isoformat(),
        },
    )
    assert refunds.context["report"].rows == [
        ["Processed (paid) (P)", 2, Decimal("105.50")],
        ["Voided (V)", 1, Decimal("100.00")],
    ]
    report = office.get(reverse("admin:accounting_deposit_report"))
    rows = [r for r in report.context["report"].rows if r[1] == "Refunds account"]
    # 145.50 + 60.00 paid out, 100.00 of it voided back.
    assert [r[4] for r in rows] == [Decimal("105.50")]
    # A paid refund cannot be paid again from the office.
    again = office.post(pay, {"check_number": "5002"})
    assert "only a refund not processed" in again.content.decode()
    assert ledger_report().ok, ledger_report().breaches
