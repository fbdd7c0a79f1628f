"""The daily close: a business date released to the general ledger.

Which ledger entries belong to a business date: the `EntryBooking`'s date when the entry
has one (written with it), else the day the entry was posted in the district's time zone.
Miscellaneous cash receipts belong to their `receipt_date`.

The release writes the GL export file (CSV, one row per business date, GL account, bank
account and payment type, with the debits, credits and how many entries and receipts made
them), computed set-wise in the database (a day of 200,000 entries is aggregated by one
query, read through a server-side cursor: memory does not grow with the day), written to a
temporary file that is renamed into place so no reader ever sees half a file, and kept with
the `GLRelease` (its name and SHA-256). After it, the date's receipts and postings are
locked: no PATCH of a receipt of that date, no new refund or receipt booked on it.

Sign convention: an entry's direction on the student's card. Debit kinds (charge, debit
adjustment, refund, reversal) are debits, credit kinds (payment, waiver, credit adjustment,
void, settlement) credits; a receipt is a credit. The GL account is the fee's billing code's
(`FeeCategory.gl_account`), the fund source's for a payment tied to a student award, and
FEESYNC_GL_UNAPPLIED_ACCOUNT for money on no fee (payments to and refunds from the
student's credit); the bank account is the booking's, else the one tied to the fee's
merchant account.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from apps.fees.services import LedgerError

from ..models import GLRelease, MiscCashReceipt
from .cashiering import method_payment_type_sql

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
GL_COLUMNS = [
    "business_date",
    "gl_account",
    "bank_account",
    "payment_type",
    "debit",
    "credit",
    "entry_count",
    "receipt_count",
]


def _lock_date(day: date) -> None:
    """Serialize a release with the postings and receipt changes of the same business date
    (PostgreSQL advisory lock, held to the end of the transaction): a receipt saved while
    the date is being released is either in the file or refused, never lost between."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [1414, day.toordinal()])


def date_released(day: date) -> bool:
    return GLRelease.objects.filter(business_date=day).exists()


def open_business_date(day: date | None = None, *, label: str = "The business date") -> date:
    """The business date a new posting or receipt change is booked on (today, by default),
    refused when it has been released to the general ledger. Call inside the transaction
    that writes: the date stays locked against a release until it commits."""
    day = day or timezone.localdate()
    _lock_date(day)
    if date_released(day):
        raise LedgerError(
            f"{label} {day:%m/%d/%Y} has been released to the general ledger; its receipts "
            "and postings can no longer change."
        )
    return day


# --- the entries of a business date, set-wise --------------------------------------------------


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), tz)
    return start, start + timedelta(days=1)


#: Each merchant account's bank account for an entry that has no booking (posted before
#: bookings, or by a vendor pull): the first one it deposits into. The deposits report reads
#: entries the same way.
MERCHANT_BANK_SQL = """(
    SELECT merchant_account_id, MIN(id) AS bank_account_id FROM accounting_bankaccount
    WHERE merchant_account_id IS NOT NULL GROUP BY merchant_account_id
)"""

#: The day's entries (booked on it, or posted on it without a booking) and receipts, each
#: with its GL account, bank account and payment type, aggregated. Built from constants of
#: this module only; every value is a bound parameter.
_GL_SQL = """
WITH entries AS (
    SELECT e.id, e.kind, e.amount, e.method, e.fee_id, b.bank_account_id, b.payment_type,
           b.student_award_id
    FROM accounting_entrybooking b JOIN fees_ledgerentry e ON e.id = b.entry_id
    WHERE b.business_date = %(day)s
    UNION ALL
    SELECT e.id, e.kind, e.amount, e.method, e.fee_id, NULL, NULL, NULL
    FROM fees_ledgerentry e
    WHERE e.created_at >= %(start)s AND e.created_at < %(end)s
      AND NOT EXISTS (SELECT 1 FROM accounting_entrybooking b WHERE b.entry_id = e.id)
), merchant_bank AS {merchant_bank}, lines AS (
    SELECT
        COALESCE(NULLIF(fs.gl_account, ''), NULLIF(c.gl_account, ''),
                 CASE WHEN x.fee_id IS NULL THEN %(unapplied)s ELSE '' END) AS gl_account,
        COALESCE(x.bank_account_id, mb.bank_account_id) AS bank_account_id,
        COALESCE(NULLIF(x.payment_type, ''), {method_type}) AS payment_type,
        CASE WHEN x.kind IN ('charge', 'debit_adjustment', 'refund', 'reversal')
             THEN x.amount ELSE 0 END AS debit,
        CASE WHEN x.kind IN ('charge', 'debit_adjustment', 'refund', 'reversal')
             THEN 0 ELSE x.amount END AS credit,
        1 AS entries, 0 AS receipts
    FROM entries x
    LEFT JOIN fees_fee f ON f.id = x.fee_id
    LEFT JOIN categories_feecategory c ON c.id = f.category_id
    LEFT JOIN merchant_bank mb ON mb.merchant_account_id = f.merchant_account_id
    LEFT JOIN accounting_studentaward sa ON sa.id = x.student_award_id
    LEFT JOIN accounting_fundsource fs ON fs.id = sa.fund_source_id
    UNION ALL
    SELECT c.gl_account, r.bank_account_id, r.payment_type, 0, r.amount, 0, 1
    FROM accounting_misccashreceipt r JOIN categories_feecategory c ON c.id = r.billing_code_id
    WHERE r.receipt_date = %(day)s
)
SELECT l.gl_account, COALESCE(ba.name, ''), l.payment_type, SUM(l.debit), SUM(l.credit),
       SUM(l.entries), SUM(l.receipts)
FROM lines l LEFT JOIN accounting_bankaccount ba ON ba.id = l.bank_account_id
GROUP BY l.gl_account, ba.name, l.payment_type
ORDER BY l.gl_account, COALESCE(ba.name, ''), l.payment_type
"""
_GL_SQL = _GL_SQL.format(
    merchant_bank=MERCHANT_BANK_SQL, method_type=method_payment_type_sql("x.method")
)
# The debit kinds spelt out above are LedgerEntry.DEBIT_KINDS (tests/accounting/test_close.py
# checks that they agree).


def _params(day: date) -> dict[str, Any]:
    start, end = _day_bounds(day)
    return {
        "day": day,
        "start": start,
        "end": end,
        "unapplied": settings.FEESYNC_GL_UNAPPLIED_ACCOUNT,
    }


def gl_lines(day: date) -> Iterator[tuple[str, str, str, Decimal, Decimal, int, int]]:
    """The GL export's rows for a business date: (GL account, bank account, payment type,
    debit, credit, entries, receipts), streamed from a server-side cursor on PostgreSQL."""
    # A named (server-side) cursor on PostgreSQL: rows arrive in batches however many there
    # are. (The demo's SQLite reads them the same way from an ordinary cursor.)
    opened = (
        connection.chunked_cursor() if connection.vendor == "postgresql" else connection.cursor()
    )
    with opened as cursor:
        cursor.execute(_GL_SQL, _params(day))
        while rows := cursor.fetchmany(2000):
            for gl, bank, ptype, debit, credit, n, receipts in rows:
                yield (
                    gl,
                    bank,
                    ptype,
                    Decimal(debit).quantize(CENT),
                    Decimal(credit).quantize(CENT),
                    int(n),
                    int(receipts),
                )


@dataclass(frozen=True)
class GLFile:
    name: str
    sha256: str
    entries: int
    receipts: int
    debit: Decimal
    credit: Decimal


def _export_dir() -> Path:
    path = Path(settings.FEESYNC_GL_EXPORT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_path(release: GLRelease) -> Path:
    return _export_dir() / release.file_name


def _write_gl_file(day: date) -> GLFile:
    """Write the day's GL export next to its final name and rename it into place (atomic on
    one filesystem), hashing it as it is written."""
    directory = _export_dir()
    name = f"gl-{day.isoformat()}.csv"
    digest = hashlib.sha256()
    entries = receipts = 0
    debit = credit = ZERO
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:

            class _Hashing:
                def write(self, text: str) -> int:
                    digest.update(text.encode())
                    return handle.write(text)

            writer = csv.writer(_Hashing())
            writer.writerow(GL_COLUMNS)
            for gl, bank, ptype, d, c, n, r in gl_lines(day):
                writer.writerow([day.isoformat(), gl, bank, ptype, f"{d:.2f}", f"{c:.2f}", n, r])
                entries += n
                receipts += r
                debit += d
                credit += c
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return GLFile(name, digest.hexdigest(), entries, receipts, debit, credit)


def gl_release(*, business_date: date, user: AbstractBaseUser | None) -> GLRelease:
    """Release a business date to the general ledger: write its GL export file, record the
    release with the file's name, hash and counts, and lock the date's receipts. A date is
    released once; today or a past date only (a future date has not happened yet)."""
    if business_date > timezone.localdate():
        raise LedgerError(
            f"{business_date:%m/%d/%Y} is in the future; only a day that has begun can be released."
        )
    with transaction.atomic():
        _lock_date(business_date)
        if date_released(business_date):
            raise LedgerError(f"{business_date:%m/%d/%Y} has already been released.")
        gl = _write_gl_file(business_date)
        release = GLRelease.objects.create(
            business_date=business_date,
            released_by=user if user is not None and user.pk else None,  # type: ignore[misc]
            file_name=gl.name,
            file_sha256=gl.sha256,
            entry_count=gl.entries,
            receipt_count=gl.receipts,
            debit_total=gl.debit,
            credit_total=gl.credit,
        )
        MiscCashReceipt.objects.filter(receipt_date=business_date, release__isnull=True).update(
            release=release
        )
    return release
