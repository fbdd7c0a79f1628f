"""Ledger benchmarks (DESIGN.md, Benchmarks), each measured with its floor in the same run.

* `assign_fee_50k_s` (target 10 s): a clerk assigns one fee to a saved list of 50,000
  students. Timed: the real path, the Celery task `run_bulk_job` of an ASSIGN `BulkJob`
  (list evaluation, `fees_create_bulk` batch by batch, progress updates, the `fee_changed`
  signal). Floor `assign_fee_50k_copy_floor_s`: a raw `COPY` of the same 50,000 fee rows and
  50,000 charge entries into the real tables (same indexes and constraints, a second
  assignment so the one-live-fee index is maintained too) in a transaction that is then
  rolled back. `assign_fee_50k_ratio` = real / floor.
* `ledger_check_200k_s` (target 30 s): `ledger_report()` (what `manage.py ledger_check`
  runs) over 200,000 fees in a realistic mix (30% part or fully paid with allocations, some
  refunded, waived, voided), which must come out consistent. Floor
  `ledger_check_200k_scan_floor_s`: one `SELECT count(*), sum(amount)` over the entries.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import connection, transaction

from apps.fees.models import BulkJob, Fee, FeeAssignment
from apps.fees.selectors import ledger_report
from apps.fees.services import Origin, assignment_create
from apps.fees.tasks import run_bulk_job
from bench import Result, data, ratio, result, stopwatch

ASSIGN_N = 50_000
ASSIGN_TARGET_S = 10.0
CHECK_N = 200_000
CHECK_STUDENTS = 50_000
CHECK_TARGET_S = 30.0
AMOUNT = Decimal("35.00")


def assign_fee_50k() -> list[Result]:
    """Time the bulk assignment of one fee to 50,000 students against its COPY floor."""
    data.reset_ledger()
    cat = data.catalog()
    school, student_ids = data.ensure_students(ASSIGN_N)
    student_list = data.school_list(school)
    assignment = assignment_create(
        student_list=student_list,
        category=cat.category,
        merchant_account=cat.merchant_account,
        description="Chromebook protection plan",
        amount=AMOUNT,
        fee_date=data.FEE_DATE,
        due_date=data.DUE_DATE,
        origin=Origin(user=cat.clerk),
    )
    job = BulkJob.objects.create(
        assignment=assignment, action=BulkJob.Action.ASSIGN, started_by=cat.clerk
    )
    data.analyze()

    with stopwatch() as real:
        run_bulk_job(job.pk)  # the Celery task, run in this process

    job.refresh_from_db()
    assert job.state == BulkJob.State.DONE, (job.state, job.error)
    assert job.changed == ASSIGN_N, job.changed
    assert Fee.objects.filter(assignment=assignment).count() == ASSIGN_N
    report = ledger_report()  # the fast path must also be a truthful one
    assert report.ok and report.counts["charge_entries"] == ASSIGN_N, report.breaches[:5]

    with transaction.atomic():
        floor_assignment = FeeAssignment.objects.create(
            student_list=student_list,
            category=cat.category,
            merchant_account=cat.merchant_account,
            description="Floor",
            amount=AMOUNT,
            fee_date=data.FEE_DATE,
            due_date=data.DUE_DATE,
        )
        with stopwatch() as floor:
            data.copy_charges(
                student_ids, catalog=cat, amount=AMOUNT, assignment_id=floor_assignment.pk
            )
            with connection.cursor() as cursor:  # deferred FK checks run here, not at rollback
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        transaction.set_rollback(True)

    return [
        result("assign_fee_50k_s", real.seconds, "s", target=ASSIGN_TARGET_S, n=ASSIGN_N),
        result("assign_fee_50k_copy_floor_s", floor.seconds, "s", n=ASSIGN_N),
        ratio("assign_fee_50k_ratio", real.seconds, floor.seconds, n=ASSIGN_N),
    ]


def _scan_entries() -> tuple[int, Decimal]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), sum(amount) FROM fees_ledgerentry")
        count, total = cursor.fetchone()
    return count, total


def ledger_check_200k() -> list[Result]:
    """Time the full ledger check over 200,000 consistent fees against a plain scan."""
    data.reset_ledger()
    cat = data.catalog()
    _, student_ids = data.ensure_students(CHECK_STUDENTS)
    mix = data.load_ledger(student_ids, CHECK_N, catalog=cat)
    data.analyze()
    _scan_entries()  # warm the cache once, so both timed reads start from the same state

    with stopwatch() as floor:
        count, _ = _scan_entries()
    with stopwatch() as real:
        report = ledger_report()

    assert count == mix.entries, (count, mix.entries)
    assert report.ok, report.breaches[:5]
    assert report.counts["fees"] == CHECK_N, report.counts
    assert report.counts["entries"] == mix.entries, (report.counts, mix.entries)
    assert report.counts["allocations"] == mix.allocations, (report.counts, mix.allocations)
    assert report.totals["fees_balance"] == f"{mix.balance:.2f}", (report.totals, mix.balance)
    return [
        result("ledger_check_200k_s", real.seconds, "s", target=CHECK_TARGET_S, n=CHECK_N),
        result("ledger_check_200k_scan_floor_s", floor.seconds, "s", n=CHECK_N),
        ratio("ledger_check_200k_ratio", real.seconds, floor.seconds, n=CHECK_N),
    ]


BENCHMARKS = [assign_fee_50k, ledger_check_200k]


def run() -> list[Result]:
    """Every benchmark of this module (`bench.run` runs them one by one via BENCHMARKS)."""
    return [row for bench in BENCHMARKS for row in bench()]
