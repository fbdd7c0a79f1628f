"""The one door for money from outside FeeSync.

A vendor pull, a file drop or the partner API describes what happened at its end as
`Movement`s (a payment, a waiver, a refund or void of a payment, a restored waiver) and
hands them to `movements_record`. That is the only way money from outside reaches the
ledger, so the rules for it live in one place:

* each movement is recorded once per (source, external id): a repeat, a page pulled twice,
  two pulls racing, or the same movement twice in one batch, is reported as already
  recorded and posts nothing;
* every movement gets one outcome, in input order, and a bad one fails alone: its reason is
  a sentence a fees clerk can read, the rest of the batch is recorded;
* plain payments (most of a nightly pull) are posted set-wise, in a handful of queries per
  batch; everything else one by one in input order, each in its own savepoint;
* a payment staff chose to keep as the student's credit rather than post on its fee (one a
  vendor reported for a fee it does not manage) comes in by `movement_credit`, keyed the
  same way, so a later pull of it finds it already recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import ZERO, Allocation, Fee, FeeDispute, LedgerEntry, StudentCredit
from ..movements import MovementKind
from .credit import _credit_refund, _payment_to_credit, credit_auto_apply
from .dispute import (
    DisputeAlreadyRecorded,
    fee_dispute_end,
    fee_dispute_open,
)
from .ledger import (
    BATCH,
    TAKEN_OUTSIDE,
    Kind,
    LedgerError,
    Origin,
    _account_payment_take,
    _AlreadyRecorded,
    _charge_post,
    _credit_account,
    _credit_change,
    _credit_reverse,
    _fee_adjust,
    _fee_waive,
    _payment_refund,
    _payment_take,
    credit_entries,
    fee_changed,
    to_money,
)


class OutcomeStatus(StrEnum):
    RECORDED = "recorded"
    ALREADY_RECORDED = "already_recorded"
    HELD = "held"  # not posted: for staff to look at (a fee this source does not manage)
    REFUSED = "refused"  # not posted: the ledger's rules say no (the reason says which)


@dataclass(frozen=True)
class MovementSource:
    """Who is sending money in.

    `external_source` keys its postings in the ledger ("integration:3") and must never
    change; `name` is what staff read ("PaySchools": "Paid at PaySchools"); `ledger_source`
    is the `LedgerEntry.Source` its entries carry. `may_settle`, when given, is told the ids
    of the fees a batch touches and returns those this source may settle; a movement on any
    other fee is held for staff instead of posted."""

    external_source: str
    name: str
    ledger_source: str
    may_settle: Callable[[set[int]], set[int]] | None = None

    def __post_init__(self) -> None:
        if not self.external_source:
            # Without it nothing could be recorded once: a programming error, not a clerk's.
            raise ValueError("A movement source needs its external_source.")

    def origin(self, external_id: str = "") -> Origin:
        return Origin(
            source=self.ledger_source,
            external_source=self.external_source,
            external_id=external_id,
        )


@dataclass(frozen=True)
class NewCharge:
    """What a CHARGE movement charges: a fee like any other, so it syncs to the vendors
    whose scope it is in."""

    student_id: int
    category_id: int
    merchant_account_id: int
    description: str
    fee_date: date
    due_date: date | None = None


@dataclass(frozen=True)
class Movement:
    """One money movement at the source, on the fee FeeSync sent it as `fee_ref`.

    `refers_to` is the external id of the payment a refund or void gives back, or of the
    waiver a restore reverses. `occurred_at` and `student_number` are what the source said;
    the ledger keys on the fee and dates entries when they are recorded."""

    external_id: str
    kind: MovementKind
    fee_ref: str
    amount: Decimal
    closed: bool = False
    refers_to: str | None = None
    occurred_at: datetime | None = None
    student_number: str = ""
    #: A payment to the student's account (ledger card) rather than to one fee: `fee_ref`
    #: is empty and this names the student (the partner API's payments).
    student_id: int | None = None
    method: str = LedgerEntry.Method.ONLINE
    note: str = ""
    charge: NewCharge | None = None
    #: The check a refund to the student's account was paid by (method "check").
    check_number: str = ""


@dataclass(frozen=True)
class MovementOutcome:
    """What became of one movement. `entry_id` is the ledger entry that records it (for
    an already recorded movement, the one recorded first); `fee_id` the fee, when known."""

    external_id: str
    status: OutcomeStatus
    reason: str = ""
    entry_id: int | None = None
    fee_id: int | None = None
    #: Every entry it posted, when more than one: a refund of the student's credit drawn
    #: from several payments is one refund entry per payment (`entry_id` is the first).
    entry_ids: tuple[int, ...] = ()


def movement_record(*, source: MovementSource, movement: Movement) -> MovementOutcome:
    """Record one movement from outside (see `movements_record`)."""
    return movements_record(source=source, movements=[movement])[0]


def movements_record(
    *, source: MovementSource, movements: Sequence[Movement]
) -> list[MovementOutcome]:
    """Record money movements from outside FeeSync, each exactly once; one outcome per
    movement, in input order. Nothing here raises for a bad movement: it is refused alone."""
    outcomes: dict[int, MovementOutcome] = {}  # by index in `movements`
    first_of: dict[str, int] = {}  # external id -> index of its first movement in the batch
    repeats: list[tuple[int, int]] = []  # (index, index of the first with the same id)
    todo: list[int] = []
    for i, m in enumerate(movements):
        if not m.external_id:
            outcomes[i] = MovementOutcome(
                "",
                OutcomeStatus.REFUSED,
                f"{source.name} sent {m.kind} for fee {m.fee_ref} without its id; "
                "FeeSync records each movement once by its id.",
            )
        elif m.external_id in first_of:
            repeats.append((i, first_of[m.external_id]))
        else:
            first_of[m.external_id] = i
            todo.append(i)

    known = _recorded(source, [movements[i].external_id for i in todo])
    new: list[int] = []
    for i in todo:
        if (entry := known.get(movements[i].external_id)) is not None:
            outcomes[i] = _already(movements[i], entry)
        else:
            new.append(i)

    if new:  # a batch recorded before (a re-pull, validation) has nothing to look up
        _record_new(source, movements, new, outcomes)

    if settings.FEESYNC_AUTO_APPLY_CREDIT:
        _auto_apply_new_credit(outcomes.values())

    for i, first in repeats:
        done = outcomes[first]
        if done.status in (OutcomeStatus.RECORDED, OutcomeStatus.ALREADY_RECORDED):
            outcomes[i] = dataclasses.replace(done, status=OutcomeStatus.ALREADY_RECORDED)
        else:
            outcomes[i] = done
    return [outcomes[i] for i in range(len(movements))]


def movement_credit(
    *, source: MovementSource, movement: Movement, student_id: int
) -> MovementOutcome:
    """Record a payment from outside whole as the student's credit, on none of their fees
    (staff decided the fee it named is not one this source may settle). Recorded once per
    (source, external id) like every movement: a repeat, or a movement this source already
    posted some other way, is ALREADY_RECORDED and posts nothing. Only a payment brings
    credit; anything else is REFUSED with the reason. With FEESYNC_AUTO_APPLY_CREDIT on, the
    credit is applied to the student's oldest open fees once the caller's transaction commits
    (after it, so that the fees are locked before the credit row, as everywhere)."""
    m = movement
    if not m.external_id:
        return MovementOutcome(
            "", OutcomeStatus.REFUSED, f"{source.name} sent no id for this {m.kind}."
        )
    if m.kind != MovementKind.PAYMENT:
        return MovementOutcome(
            m.external_id,
            OutcomeStatus.REFUSED,
            f"Only a payment can be kept as the student's credit; {m.external_id} is a {m.kind}.",
        )
    if (known := _recorded(source, [m.external_id]).get(m.external_id)) is not None:
        return _already(m, known)
    try:
        with transaction.atomic():
            entry = _payment_to_credit(
                student_id=student_id,
                amount=m.amount,
                origin=source.origin(m.external_id),
                method=m.method,
                note=_credit_note(source, m),
            )
    except _AlreadyRecorded as done:
        return _already(m, (done.entry.pk, done.entry.fee_id))
    except LedgerError as exc:
        return MovementOutcome(m.external_id, OutcomeStatus.REFUSED, "; ".join(exc.messages))
    if settings.FEESYNC_AUTO_APPLY_CREDIT:
        transaction.on_commit(lambda: credit_auto_apply(student_id=student_id))
    return MovementOutcome(m.external_id, OutcomeStatus.RECORDED, entry_id=entry.pk)


def _credit_note(source: MovementSource, m: Movement) -> str:
    """The reason of a payment kept as credit: where it was paid and for which fee, then
    the sender's own words about it (a file line's reason), so the entry keeps both."""
    said = f"Paid at {source.name} for fee {m.fee_ref}; kept as credit"
    return f"{said}: {m.note}"[:REASON_MAX] if m.note else said


def _auto_apply_new_credit(outcomes: Iterable[MovementOutcome]) -> None:
    """The district applies credit automatically: each student whose payments just recorded
    left credit has it applied to their oldest open fees, one student per transaction, once
    the payments are committed (a failure here leaves the credit on the account, whole)."""
    ids = [o.entry_id for o in outcomes if o.status == OutcomeStatus.RECORDED and o.entry_id]
    if not ids:
        return
    students = set(
        credit_entries(student=None).filter(pk__in=ids).values_list("student_id", flat=True)
    )
    for student_id in sorted(students):
        credit_auto_apply(student_id=student_id)


def _recorded(
    source: MovementSource, external_ids: Sequence[str]
) -> dict[str, tuple[int | None, int | None]]:
    """{external id: (entry id, fee id)} of those this source has on the ledger already, and
    of the dispute reports it sent (disputes post no entry but are recorded once too: a file
    dropped again). One statement for both: it runs for every movement of every source."""
    if not external_ids:
        return {}
    ids = list(external_ids)
    entries = LedgerEntry._meta.db_table
    disputes = FeeDispute._meta.db_table
    # Not a prepared statement (`prepared_cursor`): after a few runs PostgreSQL plans one
    # generically, without the arrays' values, and that plan scanned the whole ledger for
    # every page of a file import (100,000 lines re-imported: 3 s became 110 s).
    # One array on PostgreSQL; SQLite (`make run`) has no ANY: a list of placeholders there.
    values: list[Any]
    if connection.vendor == "postgresql":
        among, values = "= ANY(%s)", [ids]
    else:
        among, values = f"IN ({', '.join(['%s'] * len(ids))})", ids
    with connection.cursor() as cursor:
        cursor.execute(
            # The unique index `external_transaction_once` is partial on `external_id <> ''`:
            # said here, the planner may use it for both columns.
            f"SELECT 0, external_id, id, fee_id FROM {entries} "  # noqa: S608 - our tables; values bound
            f"WHERE external_source = %s AND external_id {among} AND NOT (external_id = '') "
            f"UNION ALL SELECT 1, external_id, NULL, fee_id FROM {disputes} "
            f"WHERE external_source = %s AND external_id {among} "
            f"UNION ALL SELECT 1, ended_external_id, NULL, fee_id FROM {disputes} "
            f"WHERE external_source = %s AND ended_external_id {among}",
            [source.external_source, *values] * 3,
        )
        rows = sorted(cursor.fetchall(), key=lambda r: r[0])  # entries first
    found: dict[str, tuple[int | None, int | None]] = {}
    for _, ext, pk, fee_id in rows:
        found.setdefault(ext, (pk, fee_id))
    return found


def _already(m: Movement, entry: tuple[int | None, int | None]) -> MovementOutcome:
    return MovementOutcome(
        m.external_id, OutcomeStatus.ALREADY_RECORDED, entry_id=entry[0], fee_id=entry[1]
    )


def _is_money(amount: Decimal) -> bool:
    try:
        to_money(amount)
    except LedgerError:
        return False
    return True


def _record_new(
    source: MovementSource,
    movements: Sequence[Movement],
    new: list[int],
    outcomes: dict[int, MovementOutcome],
) -> None:
    """Post the movements at `new` (indexes into `movements`), filling in their outcomes."""
    # Movements to the account (no fee reference, as the partner API's) need no lookup.
    refs = {movements[i].fee_ref for i in new if movements[i].fee_ref}
    fee_ids: dict[str, int] = (
        dict(Fee.objects.filter(reference__any=refs).values_list("reference", "pk")) if refs else {}
    )
    managed = source.may_settle(set(fee_ids.values())) if source.may_settle else None
    plain: list[int] = []
    rest: list[int] = []
    credit_refunds: list[int] = []
    for i in new:
        m = movements[i]
        fee_id = fee_ids.get(m.fee_ref)
        if (
            not m.fee_ref
            and m.student_id is not None
            and m.kind == MovementKind.REFUND
            and _is_money(m.amount)
        ):
            credit_refunds.append(i)  # refunds of the student's credit: set-wise below
        elif fee_id is not None and managed is not None and fee_id not in managed:
            outcomes[i] = MovementOutcome(
                m.external_id,
                OutcomeStatus.HELD,
                f"{source.name} does not manage fee {m.fee_ref}.",
                fee_id=fee_id,
            )
        elif fee_id is not None and m.kind == MovementKind.PAYMENT and not m.closed:
            # A bad amount would fail the whole set-wise batch: it is refused alone below.
            (plain if _is_money(m.amount) else rest).append(i)
        else:
            rest.append(i)

    if credit_refunds:
        outcomes.update(_credit_refunds_post_bulk(source, movements, credit_refunds))
    posted, refused = _payments_post_bulk(
        payments=[
            _ExternalPayment(
                fee_ids[movements[i].fee_ref],
                movements[i].amount,
                movements[i].external_id,
                method=movements[i].method,
                note=movements[i].note,
            )
            for i in plain
        ],
        origin=source.origin(),
        note=f"Paid at {source.name}",
    )
    raced: list[int] = []
    for i in plain:
        m = movements[i]
        if m.external_id in posted:
            outcomes[i] = MovementOutcome(
                m.external_id,
                OutcomeStatus.RECORDED,
                entry_id=posted[m.external_id],
                fee_id=fee_ids[m.fee_ref],
            )
        elif m.external_id in refused:
            rest.append(i)  # the one-by-one path posts it or says why not
        else:
            raced.append(i)  # a concurrent pull recorded it while we waited for the locks
    if raced:
        won = _recorded(source, [movements[i].external_id for i in raced])
        for i in raced:
            outcomes[i] = _already(movements[i], won[movements[i].external_id])

    rest.sort()  # in input order: a refund after the payment it gives back
    # Whole fees only for what the fast path left (usually nothing on a nightly page).
    wanted = {movements[i].fee_ref for i in rest if movements[i].fee_ref}
    fees = {f.reference: f for f in Fee.objects.filter(reference__in=wanted)} if wanted else {}
    for i in rest:
        m = movements[i]
        fee = fees.get(m.fee_ref)
        if fee is not None and _is_dispute_report(source, m, fee):
            outcomes[i] = _dispute_record(source, m, fee)
            continue
        try:
            with _unless_safe(_to_account(m, fee)):
                entry = _record_one(source, m, fee)
        except _AlreadyRecorded as done:
            outcomes[i] = _already(m, (done.entry.pk, done.entry.fee_id))
        except LedgerError as exc:
            outcomes[i] = MovementOutcome(
                m.external_id,
                OutcomeStatus.REFUSED,
                "; ".join(exc.messages),
                fee_id=fee.pk if fee is not None else None,
            )
        else:
            outcomes[i] = MovementOutcome(
                m.external_id, OutcomeStatus.RECORDED, entry_id=entry.pk, fee_id=entry.fee_id
            )


def _unless_safe(safe: bool) -> contextlib.AbstractContextManager[Any]:
    """A savepoint (or a transaction) for one movement, unless it is `safe`: a payment to
    the account writes nothing before it can refuse and nothing that can fail halfway, so
    inside the caller's transaction it needs none (two round trips saved on the partner
    API's hot path). Not `atomic(savepoint=False)`: a refusal leaving that would doom the
    caller's whole transaction."""
    if safe and transaction.get_connection().in_atomic_block:
        return contextlib.nullcontext()
    return transaction.atomic()


def _to_account(m: Movement, fee: Fee | None) -> bool:
    """A payment to the student's account (`_account_payment_take`)."""
    return fee is None and m.student_id is not None and m.kind == MovementKind.PAYMENT


def _is_dispute_report(source: MovementSource, m: Movement, fee: Fee) -> bool:
    """A dispute, or a restore that ends one: a restore naming no waiver, on a disputed
    fee (a restore naming a waiver, or on a fee not disputed, reverses a waiver)."""
    if m.kind == MovementKind.DISPUTE:
        return True
    return m.kind == MovementKind.RESTORE and not m.refers_to and fee.disputed


def _dispute_record(source: MovementSource, m: Movement, fee: Fee) -> MovementOutcome:
    try:
        if m.kind == MovementKind.DISPUTE:
            fee_dispute_open(
                fee=fee,
                external_source=source.external_source,
                external_id=m.external_id,
                reason=f"Disputed at {source.name}",
            )
        else:
            fee_dispute_end(
                fee=fee, external_source=source.external_source, external_id=m.external_id
            )
    except DisputeAlreadyRecorded:
        return MovementOutcome(m.external_id, OutcomeStatus.ALREADY_RECORDED, fee_id=fee.pk)
    except LedgerError as exc:
        return MovementOutcome(
            m.external_id, OutcomeStatus.REFUSED, "; ".join(exc.messages), fee_id=fee.pk
        )
    return MovementOutcome(m.external_id, OutcomeStatus.RECORDED, fee_id=fee.pk)


def _record_one(source: MovementSource, m: Movement, fee: Fee | None) -> LedgerEntry:
    """Post one movement in the caller's savepoint. Raises `LedgerError` (refused, with the
    reason) or `_AlreadyRecorded` (a concurrent call recorded it first)."""
    name = source.name
    if m.kind == MovementKind.CHARGE:
        if m.charge is None:
            raise LedgerError(f"{name} sent charge {m.external_id} without what it charges.")
        return _charge_post(charge=m.charge, amount=m.amount, origin=source.origin(m.external_id))
    if fee is not None and m.kind in (
        MovementKind.DEBIT_ADJUSTMENT,
        MovementKind.CREDIT_ADJUSTMENT,
    ):
        return _fee_adjust(
            fee=fee,
            amount=m.amount,
            raise_it=m.kind == MovementKind.DEBIT_ADJUSTMENT,
            origin=source.origin(m.external_id),
            reason=m.note or f"Adjusted at {name}",
        )
    if _to_account(m, fee) and m.student_id is not None:
        return _account_payment_take(
            student_id=m.student_id,
            amount=m.amount,
            method=m.method,
            origin=source.origin(m.external_id),
            note=m.note or f"Paid at {name}",
        )
    if fee is None and m.student_id is not None and m.kind == MovementKind.REFUND:
        # A refund the sender paid out of the student's credit (the partner API's
        # scheduled and unscheduled refunds): on no fee, drawn from the oldest credit.
        return _credit_refund(
            student_id=m.student_id,
            amount=m.amount,
            reason=m.note or f"Refunded at {name}",
            origin=source.origin(m.external_id),
            method=m.method,
            check_number=m.check_number,
        )[0]
    if fee is None:
        raise LedgerError(
            f"{name} sent {m.kind} {m.external_id} for fee {m.fee_ref}, "
            "which FeeSync does not have."
        )
    origin = source.origin(m.external_id)
    match m.kind:
        case MovementKind.PAYMENT:
            return _payment_take(
                fee=fee,
                amount=m.amount,
                method=m.method,
                origin=origin,
                closed=m.closed,
                note=m.note or f"Paid at {name}",
            )
        case MovementKind.WAIVER:
            return _fee_waive(
                fee=fee,
                amount=m.amount,
                reason=m.note or f"Waived at {name}",
                origin=origin,
                closed=m.closed,
            )
        case MovementKind.REFUND:
            return _payment_refund(
                payment=_original(source, m, "payment"),
                amount=m.amount,
                fee=fee,
                reason=f"Refunded at {name}",
                origin=origin,
            )
        case MovementKind.VOID:
            return _credit_reverse(
                credit=_original(source, m, "payment"),
                amount=m.amount,
                fee=fee,
                reason=f"Voided at {name}",
                origin=origin,
            )
        case MovementKind.RESTORE:
            waiver = _original(source, m, "waiver") if m.refers_to else _last_waiver(source, m, fee)
            if waiver.kind != Kind.WAIVER:
                raise LedgerError(
                    f"{name} sent restore {m.external_id} of {m.refers_to}, which is a "
                    f"{waiver.get_kind_display().lower()}, not a waiver."
                )
            return _credit_reverse(
                credit=waiver,
                amount=m.amount or None,  # no amount: the whole waiver (what is left of it)
                fee=fee,
                reason=f"Restored at {name}",
                origin=origin,
            )
    raise LedgerError(  # a MovementKind added without a way to post it
        f"{name} sent {m.kind} {m.external_id}, which FeeSync does not know how to post."
    )


def _last_waiver(source: MovementSource, m: Movement, fee: Fee) -> LedgerEntry:
    """The waiver a restore naming none reverses: this source's latest on the fee."""
    waiver = (
        LedgerEntry.objects.filter(
            fee=fee, kind=Kind.WAIVER, external_source=source.external_source
        )
        .order_by("-pk")
        .first()
    )
    if waiver is None:
        raise LedgerError(
            f"{source.name} sent restore {m.external_id} for fee {m.fee_ref}, which is "
            f"neither disputed nor waived at {source.name}: there is nothing to restore."
        )
    return waiver


def _original(source: MovementSource, m: Movement, what: str) -> LedgerEntry:
    """The entry (`what`: payment or waiver) a refund, void or restore gives back."""
    original = LedgerEntry.objects.filter(
        external_source=source.external_source, external_id=m.refers_to or ""
    ).first()
    if original is None:
        raise LedgerError(
            f"{source.name} sent {m.kind} {m.external_id} of {what} {m.refers_to}, "
            "which FeeSync has not recorded."
        )
    return original


# --- many plain payments at once -------------------------------------------------------------


@dataclass(frozen=True)
class _ExternalPayment:
    """One plain payment from outside, for `_payments_post_bulk`."""

    fee_id: int
    amount: Decimal
    external_id: str
    #: How the money was taken at the source (a file line's cash or check at the office)
    #: and its own note; the batch's note when empty.
    method: str = LedgerEntry.Method.ONLINE
    note: str = ""


#: The fees `_payments_post_bulk` changed, in one statement (PostgreSQL): the same four columns
#: `bulk_update` writes, without the CASE WHEN expression per row and column that Django builds
#: for it (measured: 1.3 s of Python per 1,000 fees; bench: <vendor>.pull_100k_s).
_PAID_FEES_UPDATE_SQL = """
UPDATE fees_fee AS f
SET balance = v.balance, status = v.status, version = v.version, amount_locked = v.locked
FROM unnest(%(ids)s::bigint[], %(balances)s::numeric[], %(statuses)s::varchar[],
            %(versions)s::integer[], %(locked)s::boolean[])
    AS v(id, balance, status, version, locked)
WHERE f.id = v.id
"""


def _update_paid_fees_pg(fees: Sequence[Fee]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _PAID_FEES_UPDATE_SQL,
            {
                "ids": [f.pk for f in fees],
                "balances": [f.balance for f in fees],
                "statuses": [f.status for f in fees],
                "versions": [f.version for f in fees],
                "locked": [f.amount_locked for f in fees],
            },
        )


#: What `_payments_post_bulk` must know of a batch, read under its fee locks in one round
#: trip: the external ids already recorded (kind "known"), the fees with a settlement or
#: void entry ("special"), and each debit entry's amount not yet allocated ("debit"). Three
#: ORM queries cost three round trips and their Python per batch (bench
#: fileexchange.import_100k_s and <vendor>.pull_100k_s).
_BATCH_STATE_SQL = """
SELECT 'known' AS what, NULL::bigint, NULL::bigint, NULL::numeric, e.external_id
FROM fees_ledgerentry AS e
WHERE e.external_source = %(source)s AND e.external_id = ANY(%(ext)s::varchar[])
  AND e.external_id <> ''
UNION ALL
SELECT 'special', e.fee_id, NULL, NULL, NULL
FROM fees_ledgerentry AS e
WHERE e.fee_id = ANY(%(fees)s::bigint[]) AND e.kind = ANY(%(special)s::varchar[])
UNION ALL
SELECT 'debit', d.fee_id, d.id,
       d.amount - COALESCE((SELECT SUM(a.amount) FROM fees_allocation AS a
                            WHERE a.debit_id = d.id), 0),
       NULL
FROM fees_ledgerentry AS d
WHERE d.fee_id = ANY(%(fees)s::bigint[]) AND d.kind = ANY(%(debits)s::varchar[])
ORDER BY 1, 3
"""


def _batch_state(
    external_source: str, external_ids: list[str], fee_ids: list[int]
) -> tuple[set[str], set[int], dict[int, list[list[Any]]]]:
    """(known external ids, fees with settlement/void entries, {fee id: [[debit id, still
    owed], ...] in entry order}) for `_payments_post_bulk`."""
    known: set[str] = set()
    special: set[int] = set()
    open_debits: dict[int, list[list[Any]]] = {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _BATCH_STATE_SQL,
                {
                    "source": external_source,
                    "ext": external_ids,
                    "fees": fee_ids,
                    "special": [Kind.SETTLEMENT, Kind.VOID],
                    "debits": sorted(LedgerEntry.DEBIT_KINDS),
                },
            )
            for what, fee_id, debit_id, owed, ext in cursor.fetchall():
                if what == "known":
                    known.add(ext)
                elif what == "special":
                    special.add(fee_id)
                elif owed > 0:
                    open_debits.setdefault(fee_id, []).append([debit_id, owed])
        return known, special, open_debits
    known = set(
        LedgerEntry.objects.filter(
            external_source=external_source, external_id__any=external_ids
        ).values_list("external_id", flat=True)
    )
    special = set(
        LedgerEntry.objects.filter(
            fee_id__any=fee_ids, kind__in=[Kind.SETTLEMENT, Kind.VOID]
        ).values_list("fee_id", flat=True)
    )
    for fee_id, debit_id, amount, applied in (
        LedgerEntry.objects.filter(fee_id__any=fee_ids, kind__in=LedgerEntry.DEBIT_KINDS)
        .annotate(applied=Coalesce(Sum("allocations_in__amount"), ZERO))
        .values_list("fee_id", "id", "amount", "applied")
        .order_by("id")
    ):
        if amount - applied > 0:
            open_debits.setdefault(fee_id, []).append([debit_id, amount - applied])
    return known, special, open_debits


#: The batch's payment entries in one INSERT over arrays (PostgreSQL), ids returned with
#: their external id; `bulk_create` built a model instance and a placeholder row per entry.
#: The unique constraint `external_transaction_once` still guards every row.
_ENTRIES_INSERT_SQL = """
INSERT INTO fees_ledgerentry
    (student_id, fee_id, kind, amount, method, check_number, reason, source,
     external_source, external_id, created_by_id, reverses_id, created_at)
SELECT v.student_id, v.fee_id, %(kind)s, v.amount, v.method, '', v.reason, %(source)s,
       %(external_source)s, v.external_id, %(created_by)s, NULL, %(now)s
FROM unnest(%(students)s::bigint[], %(fees)s::bigint[], %(amounts)s::numeric[],
            %(ext)s::varchar[], %(methods)s::varchar[], %(reasons)s::text[])
     AS v(student_id, fee_id, amount, external_id, method, reason)
RETURNING id, external_id
"""


#: LedgerEntry.reason's length: a longer note from outside is cut, never a failed batch.
REASON_MAX = 300


def _entries_insert(
    rows: list[tuple[int, int, Decimal, str, str, str]], *, fields: dict[str, Any]
) -> list[int]:
    """Insert plain payment entries (student, fee, amount, external id, method, note);
    their ids in the order of `rows`."""
    if connection.vendor != "postgresql":
        created = LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(
                    student_id=student_id,
                    fee_id=fee_id,
                    kind=Kind.PAYMENT,
                    amount=amount,
                    method=method,
                    reason=reason,
                    **{**fields, "external_id": ext},
                )
                for student_id, fee_id, amount, ext, method, reason in rows
            ],
            batch_size=BATCH,
        )
        return [e.pk for e in created]
    created_by = fields["created_by"]
    with connection.cursor() as cursor:
        cursor.execute(
            _ENTRIES_INSERT_SQL,
            {
                "kind": Kind.PAYMENT,
                "source": fields["source"],
                "external_source": fields["external_source"],
                "created_by": created_by.pk if created_by is not None else None,
                "now": timezone.now(),
                "students": [r[0] for r in rows],
                "fees": [r[1] for r in rows],
                "amounts": [r[2] for r in rows],
                "ext": [r[3] for r in rows],
                "methods": [r[4] for r in rows],
                "reasons": [r[5] for r in rows],
            },
        )
        # Each external id is unique in the batch (the caller checked), so it keys the ids.
        ids = dict((ext, pk) for pk, ext in cursor.fetchall())
    return [ids[r[3]] for r in rows]


def _allocations_insert(allocations: list[tuple[int, int, Decimal]]) -> None:
    """Insert automatic allocations (credit entry, debit entry, amount): COPY on PostgreSQL."""
    if not allocations:
        return
    if connection.vendor != "postgresql":
        Allocation.objects.bulk_create(
            [Allocation(credit_id=c, debit_id=d, amount=a) for c, d, a in allocations],
            batch_size=BATCH,
        )
        return
    now = timezone.now()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY fees_allocation (credit_id, debit_id, amount, manual, created_at) FROM STDIN"
        ) as copy:
            for credit_id, debit_id, amount in allocations:
                copy.write_row((credit_id, debit_id, amount, False, now))


def _payments_post_bulk(
    *, payments: Sequence[_ExternalPayment], origin: Origin, note: str = ""
) -> tuple[dict[str, int], dict[str, str]]:
    """Post many plain online payments in one transaction: the nightly pull's fast path.

    The same rules as `payment_take` (fee locked, nothing over the balance, recorded once per
    external id, amount locked), applied set-wise: a handful of queries per batch instead of
    ten per payment. Returns ({external id: entry id} of those posted, in input order,
    {external id: reason} for those refused, which the caller posts one by one or reports);
    one already on the ledger (a concurrent pull was first) is in neither. Fees with a
    settlement or void entry are refused here, so their status logic stays in the one-by-one
    path."""
    refused: dict[str, str] = {}
    if not payments:
        return {}, refused
    with transaction.atomic():
        fee_ids = sorted({p.fee_id for p in payments})
        fees = {
            f.pk: f
            for f in Fee.objects.select_for_update()
            .filter(pk__any=fee_ids)
            .order_by("pk")
            # What this path reads and writes: a whole Fee per payment cost more than the lock.
            .only("pk", "student_id", "balance", "status", "version", "amount_locked")
        }
        # Under the fee locks (the recheck a concurrent pull needs): which of these ids
        # are on the ledger already, which fees have settlement/void entries, and what each
        # fee's debits still owe; one round trip on PostgreSQL.
        known, special, open_debits = _batch_state(
            origin.external_source, [p.external_id for p in payments], fee_ids
        )
        accepted: list[_ExternalPayment] = []
        owed_of: dict[str, Decimal] = {}  # external id -> what of it its fee owed
        spare: dict[int, Decimal] = {}  # student id -> credit these payments bring
        for p in payments:
            fee = fees.get(p.fee_id)
            if p.external_id in known:
                continue
            known.add(p.external_id)
            if fee is None or p.fee_id in special or fee.status != Fee.Status.OPEN:
                refused[p.external_id] = "needs the one-by-one path"
                continue
            amount = to_money(p.amount)
            # Money already taken outside is posted whole; what the fee did not owe stays
            # unallocated on the entry: the student's credit (as in `_payment_take`).
            owed = min(amount, fee.balance)
            if amount > owed and origin.source not in TAKEN_OUTSIDE:
                refused[p.external_id] = (
                    f"${amount} is more than is owed on this fee (${fee.balance})."
                )
                continue
            fee.balance -= owed
            owed_of[p.external_id] = owed
            if amount > owed:
                spare[fee.student_id] = spare.get(fee.student_id, ZERO) + amount - owed
            accepted.append(
                _ExternalPayment(p.fee_id, amount, p.external_id, method=p.method, note=p.note)
            )
        if not accepted:
            return {}, refused
        fields = origin.entry_fields()
        rows = [
            (
                fees[p.fee_id].student_id,
                p.fee_id,
                p.amount,
                p.external_id,
                p.method,
                (p.note or note)[:REASON_MAX],
            )
            for p in accepted
        ]
        entry_ids = _entries_insert(rows, fields=fields)
        allocations: list[tuple[int, int, Decimal]] = []  # (credit, debit, amount)
        for p, entry_id in zip(accepted, entry_ids, strict=True):
            left = owed_of[p.external_id]
            for debit in open_debits.get(p.fee_id, []):
                take = min(debit[1], left)
                if take <= 0:
                    continue
                allocations.append((entry_id, debit[0], take))
                debit[1] -= take
                left -= take
                if left == 0:
                    break
            if left != 0:
                raise LedgerError("The fee's entries do not add up; run ledger_check.")
        _allocations_insert(allocations)
        for student_id in sorted(spare):  # after the fees: the ledger's lock order
            _credit_change(_credit_account(student_id), spare[student_id])
        changed = [fees[i] for i in {p.fee_id for p in accepted}]
        for fee in changed:
            # An open fee without settlement or void entries is paid once nothing is owed.
            fee.status = Fee.Status.OPEN if fee.balance > 0 else Fee.Status.PAID
            fee.version += 1
            fee.amount_locked = fee.amount_locked or origin.source == LedgerEntry.Source.VENDOR
        if connection.vendor == "postgresql":
            _update_paid_fees_pg(changed)
        else:
            Fee.objects.bulk_update(
                changed, ["balance", "status", "version", "amount_locked"], batch_size=BATCH
            )
        fee_changed.send(
            sender=Fee,
            fee_ids=[f.pk for f in changed],
            reason="paid",
            external_source=origin.external_source,
        )
    return {p.external_id: pk for p, pk in zip(accepted, entry_ids, strict=True)}, refused


# --- many refunds of students' credit at once ------------------------------------------------


def _credit_refunds_post_bulk(
    source: MovementSource, movements: Sequence[Movement], indexes: list[int]
) -> dict[int, MovementOutcome]:
    """Refunds paid out of the students' credit (the partner API's scheduled refunds, a
    batch of up to thousands): the rules of `credit._credit_refund` (never more than the
    credit, drawn from the oldest payments, one refund entry per payment it is drawn from,
    each allocated in full out of that payment; recorded once per external id), applied
    set-wise in one transaction: a handful of queries per batch, not a dozen per refund.
    Each movement is decided before anything is written, so one the credit cannot pay is
    refused alone and the others are posted.

    The credit rows change by one `bulk_update`: their history is the refund entries
    themselves (author, time, amount), as for every posting of the ledger."""
    out: dict[int, MovementOutcome] = {}
    with transaction.atomic():
        student_ids = sorted({movements[i].student_id or 0 for i in indexes})
        accounts = {
            a.student_id: a
            for a in StudentCredit.objects.select_for_update()
            .filter(student_id__in=student_ids)
            .order_by("student_id")
        }
        # Under the credit rows' locks: a concurrent post of the same id has committed.
        known = _recorded(source, [movements[i].external_id for i in indexes])
        spare: dict[int, list[list[Any]]] = {}
        for entry_id, student_id, left in (
            credit_entries(student=None)
            .filter(student_id__in=[pk for pk in student_ids if pk in accounts])
            .values_list("pk", "student_id", "spare")  # type: ignore[misc]  # an annotation
        ):
            spare.setdefault(student_id, []).append([entry_id, left])
        plans: list[tuple[int, Movement, list[tuple[int, Decimal]]]] = []
        changed: dict[int, StudentCredit] = {}
        for i in indexes:
            m = movements[i]
            if (entry := known.get(m.external_id)) is not None:
                out[i] = _already(m, entry)
                continue
            amount = to_money(m.amount)
            account = accounts.get(m.student_id or 0)
            available = account.amount if account is not None else ZERO
            if m.method == LedgerEntry.Method.CHECK and not m.check_number.strip():
                out[i] = MovementOutcome(
                    m.external_id,
                    OutcomeStatus.REFUSED,
                    "A refund by check needs the check number.",
                )
                continue
            if account is None or amount > available:
                out[i] = MovementOutcome(
                    m.external_id,
                    OutcomeStatus.REFUSED,
                    f"${amount:,.2f} is more than the student's credit (${available:,.2f})."
                    if available
                    else "The student has no credit on account to refund.",
                )
                continue
            draws: list[tuple[int, Decimal]] = []
            left = amount
            for row in spare.get(account.student_id, []):
                take = min(row[1], left)
                if take <= 0:
                    continue
                draws.append((row[0], take))
                row[1] -= take
                left -= take
                if left == 0:
                    break
            if left != 0:  # the credit row says more than the payments hold
                raise LedgerError("The student's credit does not add up; run ledger_check.")
            account.amount -= amount
            changed[account.student_id] = account
            known[m.external_id] = (None, None)
            plans.append((i, m, draws))
        if not plans:
            return out
        fields = source.origin().entry_fields()
        entries: list[LedgerEntry] = []
        for _, m, draws in plans:
            for n, (payment_id, take) in enumerate(draws):
                entries.append(
                    LedgerEntry(
                        student_id=m.student_id or 0,
                        fee=None,
                        kind=Kind.REFUND,
                        amount=take,
                        method=m.method,
                        check_number=m.check_number.strip(),
                        reason=m.note or f"Refunded at {source.name}",
                        reverses_id=payment_id,
                        **{**fields, "external_id": m.external_id if n == 0 else ""},
                    )
                )
        LedgerEntry.objects.bulk_create(entries, batch_size=BATCH)
        Allocation.objects.bulk_create(
            [
                Allocation(credit_id=payment_id, debit_id=e.pk, amount=e.amount, manual=True)
                for e, payment_id in zip(
                    entries, [p for _, _, draws in plans for p, _ in draws], strict=True
                )
            ],
            batch_size=BATCH,
        )
        _credit_rows_update(list(changed.values()))
        at = 0
        for i, m, draws in plans:
            ids = tuple(e.pk for e in entries[at : at + len(draws)])
            at += len(draws)
            out[i] = MovementOutcome(
                m.external_id, OutcomeStatus.RECORDED, entry_id=ids[0], entry_ids=ids
            )
    return out


#: The credit rows a batch of refunds changed, in one statement (PostgreSQL): `bulk_update`'s
#: CASE WHEN per row and column cost ~3 s of Python per 1,000 rows (bench
#: partner_api.scheduled_refunds_1k_s).
_CREDIT_ROWS_UPDATE_SQL = """
UPDATE fees_studentcredit AS c
SET amount = v.amount, since = CASE WHEN v.amount > 0 THEN c.since END, updated_at = %(now)s
FROM unnest(%(ids)s::bigint[], %(amounts)s::numeric[]) AS v(student_id, amount)
WHERE c.student_id = v.student_id
"""


def _credit_rows_update(accounts: list[StudentCredit]) -> None:
    now = timezone.now()
    if connection.vendor != "postgresql":
        for account in accounts:
            account.since = account.since if account.amount > 0 else None
            account.updated_at = now
        StudentCredit.objects.bulk_update(
            accounts, ["amount", "since", "updated_at"], batch_size=BATCH
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _CREDIT_ROWS_UPDATE_SQL,
            {
                "now": now,
                "ids": [a.student_id for a in accounts],
                "amounts": [a.amount for a in accounts],
            },
        )
