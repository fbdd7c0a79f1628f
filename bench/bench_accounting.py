"""The business office's benchmarks (issue 14): the daily close and a vendor's batch of
scheduled refunds.

* `gl_release_200k_entries_s` (target 20): one business date of ~200,000 ledger entries
  (`data.load_ledger`: charges, payments, waivers, voids, refunds, all posted today; a
  quarter of them with an `EntryBooking` naming a bank account) and 1,000 miscellaneous
  receipts released to the general ledger by `close.gl_release`: the aggregation in SQL,
  the GL export file written through a server-side cursor, the receipts locked.
  `gl_release_200k_peak_mb`: the Python memory the release allocated at its peak
  (tracemalloc): flat, whatever the day's size. `gl_release_floor_s`: one bare
  `SELECT kind, SUM(amount) ... GROUP BY kind` over the same day's entries (the scan every
  release needs); `gl_release_ratio`: release / floor.
* `partner_api.scheduled_refunds_1k_s` (target 3): one
  `POST /api/student-accounting/ledger-scheduled-refund-transactions` of 1,000 selected
  refunds (each student with credit from a vendor's payment), through the URLconf, the
  application-key authentication and the view (Django's test client, in process); every
  element must succeed. `partner_api.scheduled_refund_ms_each`: per refund.
Afterwards `ledger_report()` must find no breach (bench.run checks it).
"""

from __future__ import annotations

import json
import tempfile
import time
import tracemalloc
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from apps.accounting.models import Bank, BankAccount, Refund, RefundChange
from apps.fees.models import LedgerEntry, StudentCredit
from apps.partner_api.services import api_key_issue, api_user_create
from apps.vendors.models import Integration
from bench import Result, data, ratio, result

GL_FEES = 143_000  # about 1.4 entries per fee (data.MIX): ~200,000 entries
RECEIPTS = 1_000
REFUNDS = 1_000
ACCOUNTING_TABLES = [
    "accounting_refundchange",
    "accounting_refund",
    "accounting_misccashreceipt",
    "accounting_glrelease",
    "accounting_entrybooking",
]


def reset() -> None:
    """The ledger and the business office's rows on it, empty (the bench's students kept)."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(ACCOUNTING_TABLES)} RESTART IDENTITY CASCADE")
    data.reset_ledger()


def _bank_account(school: object) -> BankAccount:
    bank, _ = Bank.objects.get_or_create(school=school, name="Bench Bank")
    account, _ = BankAccount.objects.get_or_create(bank=bank, name="Bench operating")
    return account


def gl_release_200k() -> list[Result]:
    from apps.accounting.services.close import gl_release

    reset()
    cat = data.catalog()
    cat.category.gl_account = "4000-BENCH"
    cat.category.save(update_fields=["gl_account"])
    rent, _ = type(cat.category).objects.get_or_create(
        code="BENCH-RENT", defaults={"description": "Bench rental", "usage": "M"}
    )
    school, student_ids = data.ensure_students(50_000)
    data.load_ledger(student_ids, GL_FEES, catalog=cat)
    account = _bank_account(school)
    today = timezone.localdate()
    entry_ids = list(LedgerEntry.objects.order_by("id").values_list("id", flat=True))
    data.copy_rows(
        "accounting_entrybooking",
        ["entry_id", "business_date", "payment_type", "bank_account_id"],
        ((eid, today, "R", account.pk) for eid in entry_ids[::4]),
    )
    now = timezone.now()
    data.copy_rows(
        "accounting_misccashreceipt",
        [
            "billing_code_id",
            "amount",
            "receipt_date",
            "payment_type",
            "description",
            "payer",
            "external_id",
            "created_at",
            "updated_at",
            "bank_account_id",
        ],
        (
            (
                rent.pk,
                Decimal("35.00"),
                today,
                "H",
                "Rental",
                "Bench league",
                "",
                now,
                now,
                account.pk,
            )
            for _ in range(RECEIPTS)
        ),
    )
    data.analyze("fees_ledgerentry", "accounting_entrybooking", "accounting_misccashreceipt")
    start = timezone.make_aware(
        timezone.datetime.combine(today, timezone.datetime.min.time()),
        timezone.get_current_timezone(),
    )
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT kind, SUM(amount) FROM fees_ledgerentry WHERE created_at >= %s "
            "AND created_at < %s GROUP BY kind",
            [start, start + timedelta(days=1)],
        )
        cursor.fetchall()
    floor = time.perf_counter() - began
    entries = len(entry_ids)
    with tempfile.TemporaryDirectory() as directory:
        before = settings.FEESYNC_GL_EXPORT_DIR
        settings.FEESYNC_GL_EXPORT_DIR = directory
        try:
            tracemalloc.start()
            began = time.perf_counter()
            release = gl_release(business_date=today, user=cat.clerk)
            took = time.perf_counter() - began
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        finally:
            settings.FEESYNC_GL_EXPORT_DIR = before
    if release.entry_count != entries or release.receipt_count != RECEIPTS:
        raise AssertionError(
            f"released {release.entry_count} entries and {release.receipt_count} receipts, "
            f"expected {entries} and {RECEIPTS}"
        )
    print(
        f"   released {entries:,} entries and {RECEIPTS:,} receipts in {took:.2f}s "
        f"(floor {floor:.2f}s), peak {peak / 1e6:.1f} MB of Python memory",
        flush=True,
    )
    reset()
    return [
        result("gl_release_200k_entries_s", took, "s", target=20.0, n=entries),
        result("gl_release_200k_peak_mb", peak / 1e6, "MB", n=entries),
        result("gl_release_floor_s", floor, "s", n=entries),
        ratio("gl_release_ratio", took, floor, n=entries),
    ]


def _api_key() -> tuple[object, str]:
    integration, _ = Integration.objects.get_or_create(
        slug="partner-bench",
        defaults={
            "vendor_kind": "partnerapi",
            "name": "Partner (bench)",
            "enabled": True,
            "service_url": "https://vendor.example.org/",
        },
    )
    user, _ = get_user_model().objects.get_or_create(
        username="partner-bench", defaults={"is_staff": True}
    )
    api_user = api_user_create(
        user=user, integration=integration, groups=("API - Student Accounting",)
    )
    return api_user, api_key_issue(api_user=api_user, name="bench-refunds")[1]


def scheduled_refunds_1k() -> list[Result]:
    from rest_framework.test import APIClient

    reset()
    cat = data.catalog()
    _, student_ids = data.ensure_students(REFUNDS)
    api_user, key = _api_key()
    now = timezone.now()
    entry_ids = data.reserve_ids("fees_ledgerentry", REFUNDS)
    data.copy_rows(
        "fees_ledgerentry",
        data.ENTRY_COLUMNS,
        (
            (
                eid,
                sid,
                None,
                "payment",
                Decimal("50.00"),
                "online",
                "",
                "Paid at the vendor",
                "partner_api",
                api_user.external_source,  # type: ignore[attr-defined]
                f"BENCH-CREDIT-{eid}",
                None,
                cat.clerk.pk,
                now,
            )
            for eid, sid in zip(entry_ids, student_ids, strict=True)
        ),
    )
    StudentCredit.objects.bulk_create(
        [StudentCredit(student_id=sid, amount=Decimal("50.00"), since=now) for sid in student_ids]
    )
    refunds = Refund.objects.bulk_create(
        [
            Refund(
                student_id=sid,
                amount=Decimal("20.00"),
                due_date=timezone.localdate(),
                status=Refund.Status.SELECTED,
                selected_by=api_user,
            )
            for sid in student_ids
        ]
    )
    RefundChange.objects.bulk_create(
        [RefundChange(refund=r, from_status="N", to_status="S", api_user=api_user) for r in refunds]
    )
    data.analyze("fees_ledgerentry", "fees_studentcredit", "accounting_refund")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    body = json.dumps([{"RefundId": r.pk, "PaymentType": "H"} for r in refunds])
    path = "/api/student-accounting/ledger-scheduled-refund-transactions"
    began = time.perf_counter()
    answer = client.post(path, body, content_type="application/json")
    took = time.perf_counter() - began
    if answer.status_code != 200 or answer.json()["SucceededCount"] != REFUNDS:
        raise AssertionError(f"{answer.status_code}: {answer.content[:500]!r}")
    paid = Refund.objects.filter(status=Refund.Status.PAID).count()
    if paid != REFUNDS:
        raise AssertionError(f"{paid} refunds paid, expected {REFUNDS}")
    print(f"   {REFUNDS:,} scheduled refunds posted in one batch in {took:.2f}s", flush=True)
    return [
        result("partner_api.scheduled_refunds_1k_s", took, "s", target=3.0, n=REFUNDS),
        result("partner_api.scheduled_refund_ms_each", took * 1000 / REFUNDS, "ms", n=REFUNDS),
    ]


BENCHMARKS = [gl_release_200k, scheduled_refunds_1k]
