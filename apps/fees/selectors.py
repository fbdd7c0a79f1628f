"""Reads of the ledger: balances, totals, and the invariant check behind `ledger_check`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce

from apps.students.models import Student

from .models import (
    ZERO,
    Allocation,
    Fee,
    LedgerEntry,
    ManualApplication,
    PaymentPlan,
    ScheduledPayment,
    StudentCredit,
)

DEBITS = tuple(sorted(LedgerEntry.DEBIT_KINDS))
CREDITS = tuple(sorted(LedgerEntry.CREDIT_KINDS))
#: Sources of money taken before FeeSync heard of it (the ledger's TAKEN_OUTSIDE).
_OUTSIDE = (
    LedgerEntry.Source.VENDOR,
    LedgerEntry.Source.PARTNER_API,
    LedgerEntry.Source.FILE_DROP,
)


def student_balance(*, student: Student) -> Decimal:
    total: Decimal = Fee.objects.filter(student=student).aggregate(
        s=Coalesce(Sum("balance"), ZERO)
    )["s"]
    return total


def check_payment_recorded(*, student_id: int, check_number: str) -> LedgerEntry | None:
    """The latest payment by this check number for this student, if there is one."""
    return (
        LedgerEntry.objects.select_related("fee")
        .filter(
            student_id=student_id,
            kind=LedgerEntry.Kind.PAYMENT,
            method=LedgerEntry.Method.CHECK,
            check_number=check_number,
        )
        .order_by("-created_at", "-id")
        .first()
    )


@dataclass
class Breach:
    check: str
    detail: str


@dataclass
class LedgerReport:
    counts: dict[str, int] = field(default_factory=dict)
    totals: dict[str, str] = field(default_factory=dict)
    breaches: list[Breach] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches


# The SQL below is built only from constants of this module (kind names, LIMIT), never
# from input, hence the S608 exemption in pyproject.toml.
# Each check is one set-based SQL query that returns the offending rows (at most LIMIT), so
# the whole ledger is verified in a handful of scans however large it is.
LIMIT = 50


def _IN(kinds: Iterable[str]) -> str:
    return "(" + ", ".join(f"'{k}'" for k in kinds) + ")"


CHECKS: list[tuple[str, str, str]] = [
    (
        "fee_balance",
        "fee {0}: stored balance {1} but its entries say {2}",
        f"""
        WITH deb AS (
            SELECT e.fee_id, SUM(e.amount) AS debits FROM fees_ledgerentry e
            WHERE e.kind IN {_IN(DEBITS)} AND e.fee_id IS NOT NULL GROUP BY e.fee_id
        ), alloc AS (
            SELECT d.fee_id, SUM(a.amount) AS settled FROM fees_allocation a
            JOIN fees_ledgerentry d ON d.id = a.debit_id GROUP BY d.fee_id
        )
        SELECT f.id, f.balance, COALESCE(deb.debits, 0) - COALESCE(alloc.settled, 0)
        FROM fees_fee f LEFT JOIN deb ON deb.fee_id = f.id LEFT JOIN alloc ON alloc.fee_id = f.id
        WHERE f.balance <> COALESCE(deb.debits, 0) - COALESCE(alloc.settled, 0)
        ORDER BY f.id LIMIT {LIMIT}
        """,
    ),
    (
        "fee_amount",
        "fee {0}: stored amount {1} but its charge and adjustments say {2}",
        """
        WITH adj AS (
            SELECT e.fee_id, SUM(CASE WHEN e.kind = 'credit_adjustment' THEN -e.amount
                                      ELSE e.amount END) AS amount
            FROM fees_ledgerentry e
            WHERE e.kind IN ('charge', 'debit_adjustment', 'credit_adjustment')
            GROUP BY e.fee_id
        )
        SELECT f.id, f.amount, COALESCE(adj.amount, 0)
        FROM fees_fee f LEFT JOIN adj ON adj.fee_id = f.id
        WHERE f.amount <> COALESCE(adj.amount, 0) ORDER BY f.id LIMIT 50
        """,
    ),
    (
        "one_charge",
        "fee {0}: has {1} charge entries (exactly one expected)",
        """
        SELECT f.id, COUNT(e.id) FROM fees_fee f
        LEFT JOIN fees_ledgerentry e ON e.fee_id = f.id AND e.kind = 'charge'
        GROUP BY f.id HAVING COUNT(e.id) <> 1 ORDER BY f.id LIMIT 50
        """,
    ),
    (
        "debit_over_allocated",
        "entry {0}: debit of {1} has {2} allocated to it",
        f"""
        SELECT d.id, d.amount, SUM(a.amount) FROM fees_ledgerentry d
        JOIN fees_allocation a ON a.debit_id = d.id
        GROUP BY d.id, d.amount HAVING SUM(a.amount) > d.amount ORDER BY d.id LIMIT {LIMIT}
        """,
    ),
    (
        "credit_over_allocated",
        "entry {0}: credit of {1} has allocated {2}",
        f"""
        SELECT c.id, c.amount, SUM(a.amount) FROM fees_ledgerentry c
        JOIN fees_allocation a ON a.credit_id = c.id
        GROUP BY c.id, c.amount HAVING SUM(a.amount) > c.amount ORDER BY c.id LIMIT {LIMIT}
        """,
    ),
    (
        "allocation_direction",
        "allocation {0}: from a {1} entry to a {2} entry (credit to debit expected)",
        f"""
        SELECT a.id, c.kind, d.kind FROM fees_allocation a
        JOIN fees_ledgerentry c ON c.id = a.credit_id JOIN fees_ledgerentry d ON d.id = a.debit_id
        WHERE c.kind NOT IN {_IN(CREDITS)} OR d.kind NOT IN {_IN(DEBITS)}
           OR c.student_id <> d.student_id
        ORDER BY a.id LIMIT {LIMIT}
        """,
    ),
    (
        "given_back_too_much",
        "entry {0}: credit of {1} has {2} refunded or reversed",
        f"""
        SELECT c.id, c.amount, SUM(r.amount) FROM fees_ledgerentry c
        JOIN fees_ledgerentry r ON r.reverses_id = c.id
        GROUP BY c.id, c.amount HAVING SUM(r.amount) > c.amount ORDER BY c.id LIMIT {LIMIT}
        """,
    ),
    (
        "external_once",
        "{0} transaction {1} is recorded {2} times",
        f"""
        SELECT external_source, external_id, COUNT(*) FROM fees_ledgerentry
        WHERE external_id <> '' GROUP BY external_source, external_id HAVING COUNT(*) > 1
        LIMIT {LIMIT}
        """,
    ),
    (
        "negative_amounts",
        "{0} {1}: amount {2} is not allowed (must be positive)",
        f"""
        SELECT 'entry', id, amount FROM fees_ledgerentry WHERE amount <= 0
        UNION ALL SELECT 'allocation', id, amount FROM fees_allocation WHERE amount <= 0
        UNION ALL SELECT 'fee', id, amount FROM fees_fee WHERE amount < 0 OR balance < 0
        LIMIT {LIMIT}
        """,
    ),
    # Every credit is accounted for: what a payment brought in beyond what its fee owed is
    # either allocated (to a fee, or to a refund that paid it back) or it is the student's
    # credit, and the credit each student's account shows is exactly that remainder.
    (
        "student_credit",
        "student {0}: credit on account shows {1} but the unallocated payments say {2}",
        f"""
        WITH spare AS (
            SELECT e.student_id, e.amount - COALESCE(SUM(a.amount), 0) AS spare
            FROM fees_ledgerentry e LEFT JOIN fees_allocation a ON a.credit_id = e.id
            WHERE e.kind IN {_IN(CREDITS)} GROUP BY e.id, e.student_id, e.amount
        ), both_sides AS (
            SELECT student_id, amount AS shown, 0 AS derived FROM fees_studentcredit
            UNION ALL SELECT student_id, 0, spare FROM spare WHERE spare <> 0
        )
        SELECT student_id, SUM(shown), SUM(derived) FROM both_sides GROUP BY student_id
        HAVING SUM(shown) <> SUM(derived) ORDER BY student_id LIMIT {LIMIT}
        """,
    ),
    (
        "credit_only_from_payments",
        "entry {0}: a {1} of {2} has only {3} allocated (only a payment may leave credit)",
        f"""
        SELECT e.id, e.kind, e.amount, COALESCE(SUM(a.amount), 0)
        FROM fees_ledgerentry e LEFT JOIN fees_allocation a ON a.credit_id = e.id
        WHERE e.kind IN {_IN(CREDITS)} AND e.kind <> 'payment'
        GROUP BY e.id, e.kind, e.amount HAVING COALESCE(SUM(a.amount), 0) <> e.amount
        ORDER BY e.id LIMIT {LIMIT}
        """,
    ),
    (
        "refund_of_credit",
        "entry {0}: a {1} of {2} on no fee must be a refund paid in full out of a payment's "
        "credit (allocated: {3})",
        f"""
        SELECT d.id, d.kind, d.amount, COALESCE(SUM(a.amount), 0)
        FROM fees_ledgerentry d
        LEFT JOIN fees_allocation a ON a.debit_id = d.id
        LEFT JOIN fees_ledgerentry p ON p.id = d.reverses_id
        WHERE d.kind IN {_IN(DEBITS)} AND d.fee_id IS NULL
        GROUP BY d.id, d.kind, d.amount, p.kind, p.student_id, d.student_id
        HAVING d.kind <> 'refund' OR p.kind IS NULL OR p.kind <> 'payment'
           OR p.student_id <> d.student_id OR COALESCE(SUM(a.amount), 0) <> d.amount
        ORDER BY d.id LIMIT {LIMIT}
        """,
    ),
    # Payment plans: what a plan's installments add up to is its total, and a paid
    # installment was paid by a payment of the same student that covers every installment
    # it is said to have paid.
    (
        "plan_total",
        "payment plan {0}: total {1} but its paid and scheduled installments say {2}",
        f"""
        SELECT p.id, p.total, COALESCE(SUM(s.amount), 0) FROM fees_paymentplan p
        LEFT JOIN fees_scheduledpayment s ON s.plan_id = p.id AND s.status IN ('S', 'P')
        GROUP BY p.id, p.total HAVING p.total <> COALESCE(SUM(s.amount), 0)
        ORDER BY p.id LIMIT {LIMIT}
        """,
    ),
    (
        "installment_paid",
        "entry {0}: a {1} of {2} is said to have paid installments of {3}",
        f"""
        SELECT e.id, e.kind, e.amount, SUM(s.amount) FROM fees_scheduledpayment s
        JOIN fees_ledgerentry e ON e.id = s.payment_id
        JOIN fees_paymentplan p ON p.id = s.plan_id
        WHERE s.status = 'P'
        GROUP BY e.id, e.kind, e.amount, e.student_id
        HAVING e.kind <> 'payment' OR SUM(s.amount) > e.amount
            OR MIN(p.student_id) <> e.student_id OR MAX(p.student_id) <> e.student_id
        ORDER BY e.id LIMIT {LIMIT}
        """,
    ),
    # A payment on no fee is money taken outside that staff kept whole as the student's
    # credit (a held vendor payment): it always carries its sender's key, so it is recorded
    # once and a later pull of it finds it; a clerk's payment is always on a fee. The one
    # exception is the void of a refund of credit (`credit_refund_void`): it reverses that
    # refund entry for no more than it paid out (`given_back_too_much`).
    (
        "payment_on_no_fee",
        "entry {0}: a payment of {1} on no fee without its sender's id (source {2})",
        f"""
        SELECT p.id, p.amount, p.source FROM fees_ledgerentry p
        LEFT JOIN fees_ledgerentry r ON r.id = p.reverses_id
        WHERE p.kind = 'payment' AND p.fee_id IS NULL
          AND (p.external_id = '' OR p.source NOT IN {_IN(_OUTSIDE)})
          AND NOT (r.kind IS NOT NULL AND r.kind = 'refund' AND r.fee_id IS NULL
                   AND r.student_id = p.student_id)
        ORDER BY p.id LIMIT {LIMIT}
        """,
    ),
    (
        "status",
        "fee {0}: status {1} with balance {2}",
        f"""
        SELECT id, status, balance FROM fees_fee
        WHERE (status = 'open' AND balance = 0) OR (status <> 'open' AND balance <> 0)
        ORDER BY id LIMIT {LIMIT}
        """,
    ),
]


def _money(value: object) -> str:
    return f"{Decimal(str(value)):.2f}" if value is not None else "0.00"


def register_check(name: str, template: str, sql: str) -> None:
    """Add an invariant another app keeps about the ledger (the sync engine: every held
    payment kept as credit has its entry). Same shape as `CHECKS`; registered once."""
    if all(existing != name for existing, _, _ in CHECKS):
        CHECKS.append((name, template, sql))


def ledger_report() -> LedgerReport:
    """Recompute every balance from the entries and check every invariant of DESIGN.md."""
    report = LedgerReport()
    with connection.cursor() as cursor:
        for name, template, sql in CHECKS:
            cursor.execute(sql)
            for row in cursor.fetchall():
                shown = [_money(v) if isinstance(v, Decimal) else v for v in row]
                report.breaches.append(Breach(name, template.format(*shown)))
    credit = StudentCredit.objects.filter(amount__gt=0).aggregate(
        n=Count("pk"), s=Coalesce(Sum("amount"), ZERO)
    )
    report.counts = {
        "students_with_credit": credit["n"],
        "fees": Fee.objects.count(),
        "entries": LedgerEntry.objects.count(),
        "allocations": Allocation.objects.count(),
        "payment_plans": PaymentPlan.objects.count(),
        "installments": ScheduledPayment.objects.count(),
        "breaches": len(report.breaches),
    }
    fee_totals = Fee.objects.aggregate(
        amount=Coalesce(Sum("amount"), ZERO), balance=Coalesce(Sum("balance"), ZERO)
    )
    report.totals = {
        "fees_amount": _money(fee_totals["amount"]),
        "fees_balance": _money(fee_totals["balance"]),
        "student_credit": _money(credit["s"]),
    }
    for kind, total, n in (
        LedgerEntry.objects.values_list("kind")
        .annotate(t=Sum("amount"), n=Count("id"))
        .values_list("kind", "t", "n")
    ):
        report.totals[kind] = _money(total)
        report.counts[f"{kind}_entries"] = n
    return report


# --- the student's ledger card and payment plans ------------------------------------------------


@dataclass
class CardLine:
    entry: LedgerEntry
    applied: Decimal
    unapplied: Decimal
    manual: bool
    applications: list[Allocation]


def ledger_card(*, student: Student) -> list[CardLine]:
    """Every entry on the student's card, oldest first: charges, adjustments, payments and
    refunds, each with what of it is applied (allocations out of a credit, into a debit),
    what is not, and whether it was applied by hand."""
    entries = list(
        LedgerEntry.objects.filter(student=student)
        .select_related("fee")
        .prefetch_related("allocations_out__debit__fee", "allocations_in__credit")
        .order_by("created_at", "id")
    )
    manual = set(
        ManualApplication.objects.filter(entry__student=student).values_list("entry_id", flat=True)
    )
    lines = []
    for e in entries:
        credit = e.kind in LedgerEntry.CREDIT_KINDS
        allocations = list(e.allocations_out.all() if credit else e.allocations_in.all())
        applied = sum((a.amount for a in allocations), ZERO)
        lines.append(CardLine(e, applied, e.amount - applied, e.pk in manual, allocations))
    return lines


def payment_plans(*, student: Student) -> QuerySet[PaymentPlan]:
    """The student's payment plans with their schedules and history."""
    return (
        PaymentPlan.objects.filter(student=student)
        .prefetch_related("installments", "changes")
        .order_by("-created_at", "-id")
    )


def upcoming_installments_of(*, student_ids: set[int]) -> dict[int, list[ScheduledPayment]]:
    """What each family is expected to pay next on its plans (the portal), by student id
    (every id given is a key), in one query."""
    out: dict[int, list[ScheduledPayment]] = {pk: [] for pk in student_ids}
    for s in (
        ScheduledPayment.objects.filter(
            plan__student_id__in=student_ids, status=ScheduledPayment.Status.SCHEDULED
        )
        .select_related("plan")
        .order_by("expected_date", "id")
    ):
        out[s.plan.student_id].append(s)
    return out


def manual_applications(*, student: Student) -> QuerySet[ManualApplication]:
    return ManualApplication.objects.filter(entry__student=student).select_related("entry__fee")
