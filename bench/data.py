"""Big, consistent data for benchmarks, made fast (PostgreSQL `COPY`), for every bench module.

Benchmarks need tens or hundreds of thousands of rows before they can time anything, and
making them through the ORM one by one would take longer than the benchmark itself. These
helpers write them with `COPY ... FROM STDIN` (psycopg 3) in the bench database, and keep
the ledger *consistent*: every fee's amount, balance and status is what its entries and
allocations say, so `ledger_report()` passes over them (which `load_ledger` checks for).

Use them only against the bench database: they truncate tables and bypass the ledger
services on purpose (the services are what the benchmarks time, not how the stage is set).

    from bench import data
    data.reset_ledger()
    cat = data.catalog()
    school, student_ids = data.ensure_students(50_000)
    fee_ids = data.copy_charges(student_ids, catalog=cat)          # 50k open fees
    mix = data.load_ledger(student_ids, 200_000, catalog=cat)      # paid, waived, ...
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone
from psycopg import sql

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.students.models import School, Student, StudentList

CENT = Decimal("0.01")
FEE_DATE = date(2025, 9, 15)
DUE_DATE = date(2025, 10, 15)
LEDGER_TABLES = [
    "fees_allocation",
    "fees_ledgerentry",
    "fees_fee",
    "fees_bulkjob",
    "fees_feeassignment",
    # Derived from the entries or hanging on the student, so not reached by CASCADE: the
    # credit on each student's account and payment plans (their installments cascade).
    "fees_studentcredit",
    "fees_paymentplan",
]
FIRST = "Ava Liam Mia Noah Zoe Omar Lena Ravi Iris Theo Nora Mateo Aisha Wei".split()
LAST = "Garcia Smith Nguyen Patel Johnson Kim Okafor Rossi Chen Brown Lopez Haddad".split()
GRADES = ["K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]

FEE_COLUMNS = [
    "id",
    "reference",
    "student_id",
    "category_id",
    "merchant_account_id",
    "assignment_id",
    "description",
    "amount",
    "balance",
    "fee_date",
    "due_date",
    "status",
    "amount_locked",
    "version",
    "created_by_id",
    "created_at",
    "updated_at",
]
ENTRY_COLUMNS = [
    "id",
    "student_id",
    "fee_id",
    "kind",
    "amount",
    "method",
    "check_number",
    "reason",
    "source",
    "external_source",
    "external_id",
    "reverses_id",
    "created_by_id",
    "created_at",
]
ALLOCATION_COLUMNS = ["credit_id", "debit_id", "amount", "manual", "created_at"]


# --- low level ------------------------------------------------------------------------------


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """`COPY table (columns) FROM STDIN` the rows (tuples in column order); returns the count.

    Runs on Django's connection, so it joins the caller's transaction (and its rollback)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def reserve_ids(table: str, n: int) -> list[int]:
    """Take `n` values from the identity sequence of `table.id`, so rows written by COPY can
    reference each other (an entry its fee) and later ORM inserts never collide with them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (sequence,) = cursor.fetchone()
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, n])
        return [row[0] for row in cursor.fetchall()]


def analyze(*tables: str) -> None:
    """Refresh the planner's statistics (autovacuum would, some time after a bulk load)."""
    with connection.cursor() as cursor:
        for table in tables or ("students_student", *LEDGER_TABLES):
            cursor.execute(f'ANALYZE "{table}"')


def reset_ledger() -> None:
    """Empty the ledger (fees, entries, allocations, assignments, bulk jobs) and what refers
    to it (`CASCADE`: e.g. vendor outbox rows). TRUNCATE does not fire the append-only
    row triggers, which refuse UPDATE and DELETE only. Students are kept (they are costly)."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(LEDGER_TABLES)} RESTART IDENTITY CASCADE")


# --- reference data and students --------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """What every fee needs: a category, a merchant account, and the clerk who acts."""

    category: FeeCategory
    merchant_account: MerchantAccount
    clerk: AbstractBaseUser


def catalog() -> Catalog:
    """The bench's category, merchant account and staff user (created once, then reused)."""
    category, _ = FeeCategory.objects.get_or_create(
        code="BENCH", defaults={"description": "Benchmark fee"}
    )
    account, _ = MerchantAccount.objects.get_or_create(
        merchant_id="MID-BENCH-001", defaults={"name": "Bench Fund"}
    )
    clerk, created = get_user_model().objects.get_or_create(
        username="bench-clerk", defaults={"is_staff": True}
    )
    if created:
        clerk.set_unusable_password()
        clerk.save(update_fields=["password"])
    return Catalog(category=category, merchant_account=account, clerk=clerk)


def ensure_students(n: int) -> tuple[School, list[int]]:
    """A school of exactly `n` active students (code `BENCH-<n>`), made by COPY the first
    time and reused after; returns the school and its student ids in id order.

    One school per size, so a saved list of "that school's active students" has exactly n
    students whatever other benchmarks have created."""
    school, _ = School.objects.get_or_create(
        code=f"BENCH-{n}", defaults={"name": f"Bench School ({n:,} students)"}
    )
    have = Student.objects.filter(school=school).count()
    if have < n:
        start = date(2025, 8, 26)
        copy_rows(
            "students_student",
            [
                "student_number",
                "first_name",
                "last_name",
                "grade",
                "active",
                "enrollment_date",
                "school_id",
            ],
            (
                (
                    f"BN{n}-{i:07d}",
                    FIRST[i % len(FIRST)],
                    LAST[(i // 7) % len(LAST)],
                    GRADES[i % len(GRADES)],
                    True,
                    start - timedelta(days=i % 3000),
                    school.pk,
                )
                for i in range(have, n)
            ),
        )
        analyze("students_student")
    ids = list(Student.objects.filter(school=school).order_by("pk").values_list("pk", flat=True))
    return school, ids


def school_list(school: School) -> StudentList:
    """The saved dynamic list "active students of `school`" (what a clerk assigns fees to)."""
    student_list, _ = StudentList.objects.get_or_create(
        name=f"Bench: {school.name} active students",
        defaults={
            "kind": StudentList.Kind.DYNAMIC,
            "school": school,
            "status": StudentList.Status.ACTIVE,
        },
    )
    return student_list


# --- fees -----------------------------------------------------------------------------------


def copy_charges(
    student_ids: Sequence[int],
    *,
    catalog: Catalog,
    amount: Decimal = Decimal("25.00"),
    description: str = "Bench fee",
    assignment_id: int | None = None,
) -> list[int]:
    """One open fee and its charge entry per student, by COPY; returns the fee ids.

    The same rows `fees_create_bulk` writes (without the `fee_changed` signal), which makes
    it both a fast way to stage open fees and the raw-COPY floor of a bulk assignment."""
    n = len(student_ids)
    now = timezone.now()
    fee_ids = reserve_ids("fees_fee", n)
    entry_ids = reserve_ids("fees_ledgerentry", n)
    cat, acct, user = catalog.category.pk, catalog.merchant_account.pk, catalog.clerk.pk
    copy_rows(
        "fees_fee",
        FEE_COLUMNS,
        (
            (
                fid,
                f"BF{fid:012d}",
                sid,
                cat,
                acct,
                assignment_id,
                description,
                amount,
                amount,
                FEE_DATE,
                DUE_DATE,
                "open",
                False,
                1,
                user,
                now,
                now,
            )
            for fid, sid in zip(fee_ids, student_ids, strict=True)
        ),
    )
    copy_rows(
        "fees_ledgerentry",
        ENTRY_COLUMNS,
        (
            (eid, sid, fid, "charge", amount, "", "", description, "staff", "", "", None, user, now)
            for eid, fid, sid in zip(entry_ids, fee_ids, student_ids, strict=True)
        ),
    )
    return fee_ids


AMOUNTS = [
    Decimal(a)
    for a in (
        "3.50",
        "5.00",
        "12.75",
        "15.00",
        "18.00",
        "25.00",
        "35.00",
        "40.00",
        "45.00",
        "60.00",
        "85.00",
        "150.00",
    )
]
#: Share of fees in each state: 30% have payments (part, full, or full and partly refunded).
MIX = {"open": 62, "part_paid": 13, "paid": 15, "refunded": 2, "waived": 5, "voided": 3}


@dataclass
class LedgerMix:
    """What `load_ledger` wrote, to compare with what `ledger_report()` counts."""

    fees: int = 0
    entries: int = 0
    allocations: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    amount: Decimal = Decimal("0.00")
    balance: Decimal = Decimal("0.00")


def load_ledger(
    student_ids: Sequence[int], n_fees: int, *, catalog: Catalog, seed: int = 7
) -> LedgerMix:
    """`n_fees` fees over the students (round robin) in a realistic, consistent mix (`MIX`):
    open; part paid and paid (cash, check, card, or online from a vendor with its own
    transaction id), each payment allocated to the charge; paid then partly refunded (a
    refund reversing the payment); waived; voided. Balances and statuses are what the
    entries say. Written by COPY, about 2.4 entries and 0.4 allocations per fee."""
    rng = random.Random(seed)
    states = rng.choices(list(MIX), weights=list(MIX.values()), k=n_fees)
    # Entries per state: charge + (payment | waiver | void) + (refund).
    per_state = {"open": 1, "part_paid": 2, "paid": 2, "refunded": 3, "waived": 2, "voided": 2}
    fee_ids = reserve_ids("fees_fee", n_fees)
    entry_ids = iter(reserve_ids("fees_ledgerentry", sum(per_state[s] for s in states)))
    now = timezone.now()
    cat, acct, user = catalog.category.pk, catalog.merchant_account.pk, catalog.clerk.pk
    mix = LedgerMix(fees=n_fees)
    fees: list[tuple[Any, ...]] = []
    entries: list[tuple[Any, ...]] = []
    allocations: list[tuple[Any, ...]] = []
    methods = ["cash", "check", "card", "online", "online"]

    def entry(
        eid: int,
        sid: int,
        fid: int,
        kind: str,
        amount: Decimal,
        *,
        method: str = "",
        reverses: int | None = None,
    ) -> None:
        vendor = method == "online"
        entries.append(
            (
                eid,
                sid,
                fid,
                kind,
                amount,
                method,
                str(1000 + eid % 9000) if method == "check" else "",
                "",
                "vendor" if vendor else "staff",
                "bench:vendor" if vendor else "",
                f"V{eid}" if vendor else "",
                reverses,
                None if vendor else user,
                now,
            )
        )
        mix.by_kind[kind] = mix.by_kind.get(kind, 0) + 1

    for i, (fid, state) in enumerate(zip(fee_ids, states, strict=True)):
        sid = student_ids[i % len(student_ids)]
        amount = AMOUNTS[i % len(AMOUNTS)]
        charge = next(entry_ids)
        entry(charge, sid, fid, "charge", amount)
        balance, status, locked = amount, "open", False
        if state in ("part_paid", "paid", "refunded"):
            paid = amount
            if state == "part_paid":
                share = Decimal(rng.choice(("0.25", "0.4", "0.5", "0.8")))
                paid = max(CENT, (amount * share).quantize(CENT, rounding=ROUND_HALF_UP))
            method = rng.choice(methods)
            payment = next(entry_ids)
            entry(payment, sid, fid, "payment", paid, method=method)
            allocations.append((payment, charge, paid, False, now))
            balance -= paid
            locked = method == "online"
            if state == "refunded":
                back = (paid / 2).quantize(CENT, rounding=ROUND_HALF_UP)
                entry(next(entry_ids), sid, fid, "refund", back, reverses=payment)
                balance += back
            status = "open" if balance > 0 else "paid"
        elif state in ("waived", "voided"):
            kind = "waiver" if state == "waived" else "void"
            credit = next(entry_ids)
            entry(credit, sid, fid, kind, amount)
            allocations.append((credit, charge, amount, False, now))
            balance, status = Decimal("0.00"), "waived" if state == "waived" else "voided"
        fees.append(
            (
                fid,
                f"BL{fid:012d}",
                sid,
                cat,
                acct,
                None,
                "Bench ledger fee",
                amount,
                balance,
                FEE_DATE,
                DUE_DATE,
                status,
                locked,
                1,
                user,
                now,
                now,
            )
        )
        mix.by_state[state] = mix.by_state.get(state, 0) + 1
        mix.amount += amount
        mix.balance += balance
    copy_rows("fees_fee", FEE_COLUMNS, fees)
    copy_rows("fees_ledgerentry", ENTRY_COLUMNS, entries)
    copy_rows("fees_allocation", ALLOCATION_COLUMNS, allocations)
    mix.entries, mix.allocations = len(entries), len(allocations)
    return mix
