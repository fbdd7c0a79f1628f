"""The business office's reports (reads only), each a list of rows with the columns it shows
and exports as CSV:

* deposits per bank account and payment type per day: what the bank statement shows
  (payments and miscellaneous receipts in; refunds and reversals out);
* payments by fund source and award year (what 90/10-style reporting needs);
* refunds by status.

An entry's business date and bank account are read as the daily close reads them
(`services.close`): the booking's, else the day it was posted in the district's time zone
and the bank account tied to the fee's merchant account.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Refund
from .services.cashiering import method_payment_type_sql
from .services.close import MERCHANT_BANK_SQL

ZERO = Decimal("0.00")


@dataclass
class Report:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    totals: list[Any] | None = None

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([_cell(v) for v in row])
        if self.totals:
            writer.writerow([_cell(v) for v in self.totals])
        return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


#: Each money movement of the period with its business date, bank account and payment
#: type: payments in, refunds and reversals out (the void of a refund puts it back), and
#: the miscellaneous receipts. Constants only; values are bound.
_DEPOSITS_SQL = """
WITH moves AS (
    SELECT COALESCE(b.business_date, {posted_on}) AS day,
           COALESCE(b.bank_account_id, mb.bank_account_id) AS bank_account_id,
           COALESCE(NULLIF(b.payment_type, ''), {method_type}) AS payment_type,
           CASE WHEN e.kind = 'payment' AND r.id IS NULL THEN e.amount ELSE 0 END AS money_in,
           CASE WHEN e.kind IN ('refund', 'reversal') THEN e.amount
                WHEN e.kind = 'payment' AND r.id IS NOT NULL THEN -e.amount ELSE 0 END
               AS money_out,
           0 AS receipts
    FROM fees_ledgerentry e
    LEFT JOIN accounting_entrybooking b ON b.entry_id = e.id
    LEFT JOIN fees_ledgerentry r ON r.id = e.reverses_id AND r.kind = 'refund'
         AND e.kind = 'payment'
    LEFT JOIN fees_fee f ON f.id = e.fee_id
    LEFT JOIN {merchant_bank} mb ON mb.merchant_account_id = f.merchant_account_id
    WHERE e.kind IN ('payment', 'refund', 'reversal')
      AND COALESCE(b.business_date, {posted_on}) BETWEEN %(start)s AND %(end)s
    UNION ALL
    SELECT m.receipt_date, m.bank_account_id, m.payment_type, m.amount, 0, 1
    FROM accounting_misccashreceipt m WHERE m.receipt_date BETWEEN %(start)s AND %(end)s
)
SELECT m.day, COALESCE(ba.name, ''), m.payment_type, SUM(m.money_in), SUM(m.money_out),
       SUM(m.money_in) - SUM(m.money_out), COUNT(*), SUM(m.receipts)
FROM moves m LEFT JOIN accounting_bankaccount ba ON ba.id = m.bank_account_id
GROUP BY m.day, ba.name, m.payment_type
ORDER BY m.day, COALESCE(ba.name, ''), m.payment_type
"""

PAYMENT_TYPE_NAMES = {
    "C": "Cash",
    "E": "EFT",
    "H": "Check",
    "I": "ACH",
    "R": "Credit card",
    "O": "Other",
    "": "—",
}


#: The day an entry without a booking was posted: in the district's time zone on PostgreSQL;
#: the demo's SQLite keeps UTC times and reads their date (close to it for a demo).
_POSTED_ON = {
    "postgresql": "(e.created_at AT TIME ZONE %(tz)s)::date",
    "sqlite": "date(e.created_at)",
}


def deposits_report(*, start: date, end: date) -> Report:
    # Entries read as the daily close reads them (its bank account and payment type rules).
    sql = _DEPOSITS_SQL.format(
        posted_on=_POSTED_ON.get(connection.vendor, _POSTED_ON["sqlite"]),
        merchant_bank=MERCHANT_BANK_SQL,
        method_type=method_payment_type_sql("e.method"),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {"tz": timezone.get_current_timezone_name(), "start": start, "end": end},
        )
        raw = cursor.fetchall()
    cent = Decimal("0.01")
    rows = [
        [
            day,
            bank or "(no bank account)",
            PAYMENT_TYPE_NAMES.get(pt, pt),
            Decimal(i).quantize(cent),
            Decimal(o).quantize(cent),
            Decimal(n).quantize(cent),
            c,
            r,
        ]
        for day, bank, pt, i, o, n, c, r in raw
    ]
    totals = None
    if rows:
        totals = [
            "Total",
            "",
            "",
            sum((r[3] for r in rows), ZERO),
            sum((r[4] for r in rows), ZERO),
            sum((r[5] for r in rows), ZERO),
            sum(r[6] for r in rows),
            sum(r[7] for r in rows),
        ]
    return Report(
        "Deposits by bank account and payment type",
        [
            "Business date",
            "Bank account",
            "Payment type",
            "Money in",
            "Refunds and reversals",
            "Net deposit",
            "Transactions",
            "Of which receipts",
        ],
        rows,
        totals,
    )


_FUND_SOURCE_SQL = """
SELECT fs.code, fs.name, sa.award_year, COUNT(e.id), SUM(e.amount)
FROM accounting_entrybooking b
JOIN fees_ledgerentry e ON e.id = b.entry_id AND e.kind = 'payment'
JOIN accounting_studentaward sa ON sa.id = b.student_award_id
JOIN accounting_fundsource fs ON fs.id = sa.fund_source_id
WHERE b.business_date BETWEEN %(start)s AND %(end)s
GROUP BY fs.code, fs.name, sa.award_year
ORDER BY fs.code, sa.award_year
"""


def fund_source_report(*, start: date, end: date) -> Report:
    with connection.cursor() as cursor:
        cursor.execute(_FUND_SOURCE_SQL, {"start": start, "end": end})
        rows = [[code, name, year, n, total] for code, name, year, n, total in cursor.fetchall()]
    totals = ["Total", "", "", sum(r[3] for r in rows), sum((r[4] for r in rows), ZERO)]
    return Report(
        "Payments by fund source and award year",
        ["Fund source", "Name", "Award year", "Payments", "Amount"],
        rows,
        totals if rows else None,
    )


def refunds_report(*, start: date, end: date) -> Report:
    """Refunds due in the period, by status."""
    names = dict(Refund.Status.choices)
    rows = [
        [f"{names[row['status']]} ({row['status']})", row["n"], row["total"]]
        for row in Refund.objects.filter(due_date__range=(start, end))
        .values("status")
        .annotate(n=Count("id"), total=Coalesce(Sum("amount"), ZERO))
        .order_by("status")
    ]
    totals = ["Total", sum(r[1] for r in rows), sum((r[2] for r in rows), ZERO)]
    return Report(
        "Refunds by status",
        ["Status", "Refunds", "Amount"],
        rows,
        totals if rows else None,
    )


REPORTS = {
    "deposits": deposits_report,
    "fund-sources": fund_source_report,
    "refunds": refunds_report,
}
