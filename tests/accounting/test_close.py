"""The daily close: a business date released to the general ledger with its GL export file
(written atomically, kept with the release), locking the date; the reports and their CSV;
and ledger_check's coverage of refunds and receipts."""

from __future__ import annotations

import csv
import hashlib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounting.models import (
    Bank,
    BankAccount,
    GLRelease,
    MiscCashReceipt,
    Refund,
)
from apps.accounting.services.close import gl_release
from apps.accounting.services.receipts import ReceiptData, receipt_create
from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import LedgerError, Origin, payment_take
from tests.factories import CategoryFactory, MerchantAccountFactory, make_fee

from .refunds_support import SCHEDULED, STATUS, give_credit, schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(student: Any, office_clerk: Any) -> dict[str, Any]:
    """A fee of billing code ATH (GL 4010) paid by cash at the office, its merchant account
    banked at First Bank; a receipt of code RENT (GL 4900)."""
    merchant = MerchantAccountFactory(name="Athletics fund")
    bank = Bank.objects.create(school=student.school, name="First Bank")
    account = BankAccount.objects.create(bank=bank, name="Operating", merchant_account=merchant)
    ath = CategoryFactory(code="ATH", gl_account="4010")
    rent = CategoryFactory(code="RENT", usage="M", gl_account="4900")
    fee = make_fee(student=student, amount="80.00", category=ath, merchant_account=merchant)
    payment_take(fee=fee, amount="80.00", method="cash", origin=Origin(user=office_clerk))
    receipt_create(
        data=ReceiptData(
            billing_code=rent,
            amount=Decimal("150.00"),
            receipt_date=timezone.localdate(),
            payment_type="H",
            payer="League",
            bank_account=account,
        ),
        user=office_clerk,
    )
    return {"account": account, "fee": fee, "rent": rent}


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_releasing_a_date_writes_its_gl_file_and_locks_its_receipts(
    setup: Any, office_clerk: Any, gl_export_dir: Path
) -> None:
    today = timezone.localdate()
    release = gl_release(business_date=today, user=office_clerk)
    path = gl_export_dir / release.file_name
    assert path.exists()
    # Written whole: no temporary file left beside it, and its hash is the one kept.
    assert [p.name for p in gl_export_dir.iterdir()] == [release.file_name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == release.file_sha256
    rows = rows_of(path)
    by_gl = {(r["gl_account"], r["payment_type"]): r for r in rows}
    # The charge (a debit) and the cash payment (a credit) under the billing code's GL
    # account, in the bank account of the fee's merchant account.
    assert by_gl[("4010", "")]["debit"] == "80.00"
    assert by_gl[("4010", "C")]["credit"] == "80.00"
    assert by_gl[("4010", "C")]["bank_account"] == "Operating"
    assert by_gl[("4900", "H")] == {
        "business_date": today.isoformat(),
        "gl_account": "4900",
        "bank_account": "Operating",
        "payment_type": "H",
        "debit": "0.00",
        "credit": "150.00",
        "entry_count": "0",
        "receipt_count": "1",
    }
    assert release.entry_count == 2 and release.receipt_count == 1
    assert release.debit_total == Decimal("80.00")
    assert release.credit_total == Decimal("230.00")
    assert MiscCashReceipt.objects.get().release == release
    with pytest.raises(LedgerError, match="already been released"):
        gl_release(business_date=today, user=office_clerk)
    with pytest.raises(LedgerError, match="future"):
        gl_release(business_date=today + timedelta(days=1), user=office_clerk)
    assert ledger_report().ok


def test_award_payments_go_to_the_fund_source_gl_account(
    accounts_api: Any,
    period: Any,
    academic_year: Any,
    fund: Any,
    bank_account: Any,
    office_clerk: Any,
    gl_export_dir: Path,
) -> None:
    from tests.accounting.conftest import COMMAND, command

    fund.code, fund.name, fund.gl_account = "PELL", "Pell grant", "2300"
    fund.save()
    # A payment to the fund source, as a vendor posts it (PostAccountTransactionPayment).
    posted = accounts_api.post(
        COMMAND,
        command(
            period,
            academic_year,
            fund,
            bank_account,
            PaymentType="E",
            TransactionAmount="500.00",
            TransactionDate=f"{timezone.localdate()}T00:00:00",
        ),
        format="json",
    )
    assert posted.status_code in (200, 201), posted.json()
    release = gl_release(business_date=timezone.localdate(), user=office_clerk)
    rows = rows_of(gl_export_dir / release.file_name)
    assert [(r["gl_account"], r["payment_type"], r["credit"]) for r in rows] == [
        ("2300", "E", "500.00")
    ]
    report = Client()
    report.force_login(office_clerk)
    page = report.get(reverse("admin:accounting_fund_source_report"))
    assert page.status_code == 200
    assert ["PELL", "Pell grant", "2026-27", 1, Decimal("500.00")] in page.context["report"].rows


def test_a_refund_cannot_be_posted_on_a_released_date(
    api: Any, student: Any, office_clerk: Any
) -> None:
    give_credit(api, student, "50.00")
    refund = schedule(student, "20.00", office_clerk)
    api.patch(STATUS, {"RefundIds": [refund.pk], "Status": "S"}, format="json")
    gl_release(business_date=timezone.localdate(), user=office_clerk)
    result = api.post(SCHEDULED, [{"RefundId": refund.pk}], format="json").json()["Results"][0]
    assert result["IsSuccessful"] is False
    assert "released to the general ledger" in result["Errors"][0]["detail"]
    refund.refresh_from_db()
    assert refund.status == "S"


@pytest.mark.ledger_breach
def test_ledger_check_finds_a_paid_refund_without_its_entries(
    api: Any, student: Any, office_clerk: Any
) -> None:
    give_credit(api, student, "50.00")
    refund = schedule(student, "20.00", office_clerk)
    assert ledger_report().ok
    # A refund marked paid behind the services' back, pointing at the payment.
    payment = LedgerEntry.objects.get(kind="payment")
    Refund.objects.filter(pk=refund.pk).update(status="P", entry=payment)
    names = {b.check for b in ledger_report().breaches}
    assert "refund_paid_entries" in names
    with pytest.raises(CommandError, match="breach"):
        call_command("ledger_check")


@pytest.mark.ledger_breach
def test_ledger_check_finds_a_receipt_left_out_of_its_release(
    setup: Any, office_clerk: Any
) -> None:
    gl_release(business_date=timezone.localdate(), user=office_clerk)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounting_misccashreceipt SET release_id = NULL")
    names = {b.check for b in ledger_report().breaches}
    assert {"receipt_released", "release_receipt_count"} <= names


def test_the_release_page_and_the_reports_with_csv(setup: Any, office_clerk: Any) -> None:
    client = Client()
    client.force_login(office_clerk)
    today = timezone.localdate()
    page = client.get(reverse("admin:accounting_glrelease_add"))
    assert page.status_code == 200
    done = client.post(
        reverse("admin:accounting_glrelease_add"), {"business_date": today.isoformat()}, follow=True
    )
    assert "released to the general ledger" in done.content.decode()
    release = GLRelease.objects.get()
    download = client.get(reverse("admin:accounting_glrelease_file", args=[release.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"business_date,gl_account")
    again = client.post(
        reverse("admin:accounting_glrelease_add"), {"business_date": today.isoformat()}
    )
    assert "already been released" in again.content.decode()

    deposits = client.get(reverse("admin:accounting_deposit_report"))
    assert deposits.status_code == 200
    rows = deposits.context["report"].rows
    assert [today, "Operating", "Cash", Decimal("80.00"), Decimal("0.00")] == rows[0][:5]
    assert [today, "Operating", "Check", Decimal("150.00")] == rows[1][:4]
    exported = client.get(reverse("admin:accounting_deposit_report"), {"format": "csv"})
    assert exported["Content-Type"].startswith("text/csv")
    lines = exported.content.decode().splitlines()
    assert lines[0].startswith("Business date,Bank account,Payment type")
    assert lines[-1].startswith("Total,,,230.00")
    empty = client.get(
        reverse("admin:accounting_refund_report"), {"start": "2020-01-01", "end": "2020-01-31"}
    )
    assert "Nothing in this period" in empty.content.decode()
    bad = client.get(
        reverse("admin:accounting_deposit_report"), {"start": "2026-02-01", "end": "2026-01-01"}
    )
    assert "cannot be before its start" in bad.content.decode()


def test_the_gl_export_treats_the_ledgers_debit_kinds_as_debits() -> None:
    from apps.accounting.services.close import _GL_SQL

    spelt = "IN ('charge', 'debit_adjustment', 'refund', 'reversal')"
    assert spelt in _GL_SQL
    assert sorted(LedgerEntry.DEBIT_KINDS) == ["charge", "debit_adjustment", "refund", "reversal"]


def test_a_methods_payments_carry_one_payment_type_booked_or_not(
    setup: Any, office_clerk: Any, gl_export_dir: Path
) -> None:
    """A payment booked when it was taken (the office's) and one without a booking (a vendor
    pull's) with the same method are one line of the GL file and of the deposits report:
    the close, the reports and the bookings map methods to payment types alike."""
    from apps.accounting.reports import deposits_report
    from apps.accounting.services.cashiering import office_payment_book

    fee = make_fee(
        student=setup["fee"].student,
        amount="50.00",
        category=setup["fee"].category,
        merchant_account=setup["fee"].merchant_account,
    )
    unbooked = payment_take(fee=fee, amount="20.00", method="online", origin=Origin())
    booked = payment_take(fee=fee, amount="30.00", method="online", origin=Origin())
    office_payment_book(entry=booked, session=None)
    assert not hasattr(unbooked, "booking") or unbooked.booking is None
    today = timezone.localdate()
    online = [r for r in deposits_report(start=today, end=today).rows if r[2] == "EFT"]
    assert len(online) == 1 and online[0][3] == Decimal("50.00")
    release = gl_release(business_date=today, user=office_clerk)
    lines = [r for r in rows_of(gl_export_dir / release.file_name) if r["gl_account"] == "4010"]
    assert {r["payment_type"] for r in lines} == {"", "C", "E"}
    assert [r["credit"] for r in lines if r["payment_type"] == "E"] == ["50.00"]
