"""The sync engine: outbox, delivery, payment pulls and validation, for any vendor.

Nothing here names a vendor: every call to one goes through the integration's adapter
(`apps.vendors.kinds`, found through `apps.vendors.registry`). Money changes go through
`apps.fees.services` only.

Delivery in one paragraph: a committed change to a fee has an `OutboxItem` (written in the
same transaction by `outbox_enqueue`). `deliver` claims due items with
`SELECT ... FOR UPDATE SKIP LOCKED`, leases them (so a second worker, or a redelivered task,
does not send them at the same moment), pushes the fees' *current* state in batches, and
removes an item only when the vendor holds at least the version that made it. A failure
backs the whole integration off (capped exponential backoff with jitter) and counts an
attempt on each item; after `FEESYNC_DELIVERY_MAX_ATTEMPTS` an item is parked for staff with
its last error, never dropped. The sweeper re-triggers delivery every minute, so a backlog
drains by itself when the vendor is back.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from celery import current_app
from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from apps.fees.models import Fee, LedgerEntry
from apps.fees.services import (
    Movement,
    MovementKind,
    MovementOutcome,
    MovementSource,
    OutcomeStatus,
    movements_record,
)

from .kinds.base import (
    AdapterConfig,
    Capability,
    FeeRecord,
    PushResult,
    RefusedMovement,
    VendorAdapter,
    VendorError,
    VendorPayment,
)
from .models import (
    DeliveryEvent,
    Discrepancy,
    HeldMovement,
    Integration,
    OutboxItem,
    SyncedFee,
)
from .registry import get_adapter_class
from .scope import Scope

log = logging.getLogger(__name__)


# --- adapters --------------------------------------------------------------------------


def adapter_for(integration: Integration, *, timeout: float | None = None) -> VendorAdapter:
    """The integration's adapter; `timeout` (seconds) is what is left of the deadline of a
    page a person is waiting on: it shortens the integration's own timeout and is the
    adapter's deadline, its own retries included (`AdapterConfig.deadline`)."""
    cls = get_adapter_class(integration.vendor_kind)
    own = float(integration.timeout_seconds)
    return cls(
        AdapterConfig(
            base_url=integration.service_url,
            credentials=integration.credentials,
            timeout=min(own, timeout) if timeout else own,
            options={**cls.option_defaults(), **integration.options},
            deadline=time.monotonic() + timeout if timeout else None,
        )
    )


def _backoff(attempt: int) -> float:
    base: float = settings.FEESYNC_BACKOFF_BASE_SECONDS
    cap: float = settings.FEESYNC_BACKOFF_CAP_SECONDS
    growth: int = 2 ** max(0, attempt - 1)  # typeshed: int ** int may be a float (Any)
    # "Full jitter" halves the herd of retries without ever exceeding the cap
    # (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
    return min(cap, base * growth) * random.uniform(0.5, 1.0)  # noqa: S311


# --- the outbox ----------------------------------------------------------------------------------


def outbox_enqueue(
    *, integration: Integration, fee_ids: Iterable[int], trigger: bool = True
) -> int:
    """Mark fees as needing delivery to `integration` (in the caller's transaction) and
    trigger delivery once that transaction commits (`trigger=False`: the caller delivers
    them itself, and counts what happened). Fees out of scope are ignored."""
    now = timezone.now()
    ids = list(fee_ids)
    scope = Scope.of(integration).fees()
    rows = [
        OutboxItem(
            integration=integration,
            fee_id=pk,
            version=version,
            state=OutboxItem.State.PENDING,
            attempts=0,
            next_attempt_at=now,
            last_error="",
            updated_at=now,
        )
        for start in range(0, len(ids), 5000)
        for pk, version in scope.filter(pk__any=ids[start : start + 5000]).values_list(
            "pk", "version"
        )
    ]
    if not rows:
        return 0
    OutboxItem.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["integration", "fee"],
        update_fields=["version", "state", "attempts", "next_attempt_at", "updated_at"],
    )
    if trigger:
        integration_id = integration.pk
        transaction.on_commit(lambda: _trigger_delivery(integration_id))
    return len(rows)


#: Queued by name: `apps.vendors.tasks` builds on this module, so the engine does not import it.
DELIVER_TASK = "apps.vendors.tasks.deliver_outbox"


def _trigger_delivery(integration_id: int) -> None:
    try:
        # A signature, not `send_task`: where the task is loaded (always, through
        # VendorsConfig.ready) it is the task's own apply_async, so eager mode runs it here.
        current_app.signature(DELIVER_TASK, args=[integration_id]).delay()
    except Exception:  # The broker being down must not fail the clerk's request.
        log.exception(
            "Could not queue delivery for integration %s; the sweeper will.", integration_id
        )


@dataclass
class DeliveryReport:
    sent: int = 0
    acknowledged: int = 0
    rejected: int = 0
    failed: int = 0
    error: str = ""
    skipped_backoff: bool = False
    busy: bool = False  # another delivery to this integration was running: it sends these
    #: The first few failures in words (the vendor's error, fees it refused), for the run.
    errors: list[str] = field(default_factory=list)


def _claim(integration: Integration, limit: int) -> list[OutboxItem]:
    now = timezone.now()
    lease = timedelta(seconds=settings.FEESYNC_DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        items = list(
            OutboxItem.objects.select_for_update(skip_locked=True)
            .filter(
                integration=integration, state=OutboxItem.State.PENDING, next_attempt_at__lte=now
            )
            .order_by("next_attempt_at", "id")[:limit]
        )
        if items:
            OutboxItem.objects.filter(pk__any=[i.pk for i in items]).update(
                next_attempt_at=now + lease
            )
    return items


def fee_records(integration: Integration, fee_ids: Sequence[int]) -> dict[int, FeeRecord]:
    """The fees as the vendor must hold them now, keyed by fee id."""
    mids = {
        m.merchant_account_id: m.vendor_merchant_id
        for m in integration.account_mappings.all()
        if m.vendor_merchant_id
    }
    fees = Fee.objects.filter(pk__any=fee_ids).select_related(
        "student__school", "category", "merchant_account"
    )
    return {
        fee.pk: FeeRecord(
            fee_ref=fee.reference,
            version=fee.version,
            student_id=fee.student.student_number,
            student_name=fee.student.full_name,
            school_code=fee.student.school.code,
            category_code=fee.category.code,
            merchant_id=mids.get(fee.merchant_account_id, fee.merchant_account.merchant_id),
            description=fee.description,
            amount=fee.amount,
            amount_due=fee.balance,
            fee_date=fee.fee_date,
            due_date=fee.due_date,
            active=fee.status == Fee.Status.OPEN,
        )
        for fee in fees
    }


def _delivery_lease_take(integration_id: int) -> bool:
    """Take (or renew) the integration's delivery lease; False if another delivery holds it.
    Renewed before every batch, so a crashed worker's lease runs out after one lease."""
    now = timezone.now()
    until = now + timedelta(seconds=settings.FEESYNC_DELIVERY_LEASE_SECONDS)
    return bool(
        Integration.objects.filter(pk=integration_id)
        .filter(Q(delivering_until__isnull=True) | Q(delivering_until__lte=now))
        .update(delivering_until=until)
    )


def _delivery_due(integration_id: int, *, changed_since: datetime | None = None) -> bool:
    due = OutboxItem.objects.filter(
        integration_id=integration_id,
        state=OutboxItem.State.PENDING,
        next_attempt_at__lte=timezone.now(),
    )
    if changed_since is not None:
        due = due.filter(updated_at__gte=changed_since)
    return due.exists()


def deliver(
    *, integration_id: int, budget_seconds: float = 50.0, max_batches: int | None = None
) -> DeliveryReport:
    """Send what is due in the integration's outbox, batch by batch, until it is empty,
    the vendor fails, the time budget is spent, or `max_batches` are sent. Safe to run
    concurrently and twice.

    Fairness between vendors (DESIGN.md, "One vendor's outage never delays another"): at
    most one delivery runs per integration at a time (a lease on its row: a second one
    returns at once, so thousands of triggers during an outage cost one worker, not the
    pool), and a bounded run (`max_batches`, the Celery task's) queues a fresh task for the
    rest instead of holding its worker until the backlog is gone. Tasks of different
    integrations therefore take turns on the workers: one vendor's backlog holds at most one
    worker, and a delivery for another vendor waits at most for one bounded run of it (on
    a single-process worker), never for the whole backlog. Fair claiming rather than a
    queue per integration: queues per vendor would need a worker per integration, which
    districts add in the admin without deploying. Deliveries do have a queue of their own
    (`delivery`, config.settings.base.CELERY_TASK_ROUTES), so nightly validation and
    exports never hold them up."""
    report = DeliveryReport()
    integration = Integration.objects.get(pk=integration_id)
    if not integration.enabled or Capability.SEND not in integration.kind.capabilities:
        # A kind that takes fees as files: its export task sends the outbox's fees.
        return report
    if integration.backoff_until and integration.backoff_until > timezone.now():
        report.skipped_backoff = True
        return report
    if not _delivery_lease_take(integration_id):
        report.busy = True
        return report
    started = timezone.now()
    bounded = False  # stopped by its time or batch bound, not for want of work
    try:
        adapter = adapter_for(integration)
        deadline = time.monotonic() + budget_seconds
        batches = 0
        while True:
            if time.monotonic() >= deadline or (max_batches is not None and batches >= max_batches):
                bounded = True
                break
            if batches:
                _delivery_lease_renew(integration_id)
            items = _claim(integration, adapter.push_batch_size)
            if not items:
                break
            batches += 1
            records = fee_records(integration, [i.fee_id for i in items])
            try:
                result = adapter.push_fees(list(records.values()))
            except VendorError as exc:
                _delivery_failed(integration, items, exc)
                report.failed += len(items)
                report.error = exc.message
                _first_errors(report.errors, [f"{plural_fees(len(items))} not sent: {exc.message}"])
                break
            report.sent += len(items)
            acked, refusals = _delivery_acknowledged(integration, items, records, result)
            report.acknowledged += acked
            report.rejected += len(refusals)
            _first_errors(report.errors, refusals)
    finally:
        Integration.objects.filter(pk=integration_id).update(delivering_until=None)
    # Checked after the lease is released: the rest of a bounded run, or a change committed
    # while this run held the lease (its own trigger returned at once), gets a task of its
    # own. Otherwise only changes made about while it ran count (a lease's length before it
    # started covers a transaction that began earlier and committed late), so a run never
    # re-queues itself for ever; anything older is the sweeper's.
    margin = timedelta(seconds=settings.FEESYNC_DELIVERY_LEASE_SECONDS)
    if not report.failed and _delivery_due(
        integration_id, changed_since=None if bounded else started - margin
    ):
        _trigger_delivery(integration_id)
    return report


#: How many failures a run keeps in words (the counts say how many there were in all).
FIRST_ERRORS = 3


def _first_errors(errors: list[str], more: Sequence[str]) -> None:
    errors.extend(more[: max(0, FIRST_ERRORS - len(errors))])


def plural_fees(n: int) -> str:
    return f"{n:,} fee{'s' if n != 1 else ''}"


def _delivery_lease_renew(integration_id: int) -> None:
    # Should it have run out meanwhile (a batch slower than the lease), a second run may
    # have started: harmless, because items are claimed and leased one by one.
    until = timezone.now() + timedelta(seconds=settings.FEESYNC_DELIVERY_LEASE_SECONDS)
    Integration.objects.filter(pk=integration_id).update(delivering_until=until)


def _fees_share_lock(fee_ids: Iterable[int]) -> None:
    """Take the fees' key-share locks first, in id order (PostgreSQL).

    A delivery's transaction writes rows that point at fees (SyncedFee, DeliveryEvent),
    whose foreign keys are checked at COMMIT, and changes the fees' outbox rows. A ledger
    service locks its fee FOR UPDATE and then writes that fee's outbox row. Taken the other
    way round (outbox row first, fee at commit) the two deadlock (simulate --seed 4): so the
    delivery waits for the fee first, and a change committed meanwhile raises the outbox
    row's version, which the delivery then keeps."""
    ids = sorted(set(fee_ids))
    if ids and connections["default"].vendor == "postgresql":
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT id FROM fees_fee WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE", [ids]
            )


def _delivery_acknowledged(
    integration: Integration,
    items: list[OutboxItem],
    records: dict[int, FeeRecord],
    result: PushResult,
) -> tuple[int, list[str]]:
    """Record what the vendor acknowledged; returns how many, and each refusal in words."""
    now = timezone.now()
    acked_items = [
        i
        for i in items
        if records.get(i.fee_id) and records[i.fee_id].fee_ref in result.acknowledged
    ]
    with transaction.atomic():
        _fees_share_lock(i.fee_id for i in items)
        SyncedFee.objects.bulk_create(
            [
                SyncedFee(
                    integration=integration,
                    fee_id=i.fee_id,
                    acknowledged_at=now,
                    acknowledged_version=result.acknowledged[records[i.fee_id].fee_ref],
                )
                for i in acked_items
            ],
            update_conflicts=True,
            unique_fields=["integration", "fee"],
            update_fields=["acknowledged_version", "acknowledged_at"],
        )
        # Remove an item only if the vendor holds at least the version that made it: a
        # change committed while this batch was in flight has raised the item's version
        # and keeps it (the row lock makes that check race-free).
        by_version: dict[int, list[int]] = {}
        for i in acked_items:
            by_version.setdefault(result.acknowledged[records[i.fee_id].fee_ref], []).append(i.pk)
        for version, ids in by_version.items():
            OutboxItem.objects.filter(pk__any=ids, version__lte=version).delete()
        # A change that raced this batch stays queued, but its earlier failures are over:
        # this delivery succeeded, so the headline no longer shows their error.
        OutboxItem.objects.filter(pk__any=[i.pk for i in acked_items]).update(
            next_attempt_at=now, attempts=0, last_error=""
        )
        rejected = [
            i
            for i in items
            if records.get(i.fee_id) and records[i.fee_id].fee_ref in result.rejected
        ]
        # The fee's history: one INSERT for the whole batch.
        DeliveryEvent.objects.bulk_create(
            [
                DeliveryEvent(
                    integration_id=integration.pk,
                    fee_id=i.fee_id,
                    kind=DeliveryEvent.Kind.DELIVERED,
                    version=result.acknowledged[records[i.fee_id].fee_ref],
                    created_at=now,
                )
                for i in acked_items
            ]
            + [
                DeliveryEvent(
                    integration_id=integration.pk,
                    fee_id=i.fee_id,
                    kind=DeliveryEvent.Kind.REFUSED,
                    version=records[i.fee_id].version,
                    detail=result.rejected[records[i.fee_id].fee_ref],
                    created_at=now,
                )
                for i in rejected
            ]
        )
        for item in rejected:
            ref = records[item.fee_id].fee_ref
            reason = result.rejected[ref]
            OutboxItem.objects.filter(pk=item.pk).update(
                state=OutboxItem.State.PARKED, last_error=f"Refused by the vendor: {reason}"
            )
            discrepancy_record(
                integration=integration,
                kind=Discrepancy.Kind.REJECTED_FEE,
                fee_id=item.fee_id,
                fee_ref=ref,
                detail=f"{integration.vendor_name} refused this fee: {reason}",
            )
        # A fee deleted from FeeSync while queued has nothing left to send.
        OutboxItem.objects.filter(pk__any=[i.pk for i in items if i.fee_id not in records]).delete()
        # One UPDATE per batch (not per fee): the staff pages' "last sent" and the end of
        # any backoff.
        Integration.objects.filter(pk=integration.pk).update(
            consecutive_failures=0, backoff_until=None, last_sent_at=now
        )
    refusals = [
        f"Fee {records[i.fee_id].fee_ref} refused: {result.rejected[records[i.fee_id].fee_ref]}"
        for i in rejected
    ]
    return len(acked_items), refusals


def _delivery_failed(integration: Integration, items: list[OutboxItem], exc: VendorError) -> None:
    now = timezone.now()
    max_attempts = settings.FEESYNC_DELIVERY_MAX_ATTEMPTS
    events: list[DeliveryEvent] = []
    with transaction.atomic():
        _fees_share_lock(i.fee_id for i in items)
        for item in items:
            attempts = item.attempts + 1
            events.append(
                DeliveryEvent(
                    integration_id=integration.pk,
                    fee_id=item.fee_id,
                    kind=DeliveryEvent.Kind.PARKED
                    if attempts >= max_attempts
                    else DeliveryEvent.Kind.FAILED,
                    version=item.version,
                    attempt=attempts,
                    detail=exc.message,
                    created_at=now,
                )
            )
            OutboxItem.objects.filter(pk=item.pk).update(
                attempts=attempts,
                last_error=exc.message,
                state=OutboxItem.State.PARKED
                if attempts >= max_attempts
                else OutboxItem.State.PENDING,
                next_attempt_at=now + timedelta(seconds=_backoff(attempts)),
            )
        DeliveryEvent.objects.bulk_create(events)  # the fees' history: one INSERT a batch
        failures = integration.consecutive_failures + 1
        delay = exc.retry_after if exc.retry_after else _backoff(failures)
        Integration.objects.filter(pk=integration.pk).update(
            consecutive_failures=failures,
            backoff_until=now + timedelta(seconds=delay),
            last_error=exc.message,
            last_error_at=now,
        )


def outbox_retry_parked(
    *, integration: Integration, item_ids: Sequence[int] | None = None, by_id: int | None = None
) -> int:
    """Staff: send parked changes again (all of them, or the ones given; `by`, who asked)."""
    qs = integration.outbox.filter(state=OutboxItem.State.PARKED)
    if item_ids is not None:
        qs = qs.filter(pk__in=item_ids)
    with transaction.atomic():
        now = timezone.now()
        DeliveryEvent.objects.bulk_create(
            [
                DeliveryEvent(
                    integration_id=integration.pk,
                    fee_id=fee_id,
                    kind=DeliveryEvent.Kind.RETRIED,
                    version=version,
                    by_id=by_id,
                    created_at=now,
                )
                for fee_id, version in qs.select_for_update().values_list("fee_id", "version")
            ]
        )
        n = qs.update(
            state=OutboxItem.State.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            last_error="",
        )
        Integration.objects.filter(pk=integration.pk).update(backoff_until=None)
        if n:
            transaction.on_commit(lambda: _trigger_delivery(integration.pk))
    return n


def send_fees(*, integration: Integration) -> dict[str, int | str]:
    """ "Resend fees" / the backfill: queue every in-scope fee the vendor does not hold at
    its current version, then deliver."""
    stale = (
        Scope.of(integration)
        .fees()
        .exclude(synced__integration=integration, synced__acknowledged_version__gte=F("version"))
    )
    with transaction.atomic():
        # Not triggered on commit: this run delivers them now, so that its counts (and its
        # outcome) say what became of them rather than what a parallel delivery did.
        queued = outbox_enqueue(
            integration=integration, fee_ids=stale.values_list("pk", flat=True), trigger=False
        )
    report = deliver(integration_id=integration.pk, budget_seconds=600)
    if report.skipped_backoff:
        # The vendor failed lately (perhaps the delivery this very queueing triggered):
        # nothing was sent, and the run must not read as a success.
        integration.refresh_from_db(fields=["last_error"])
        report.failed = integration.outbox.filter(state=OutboxItem.State.PENDING).count()
        report.errors.append(
            f"{plural_fees(report.failed)} not sent, because {integration.vendor_name} failed "
            f"lately: {integration.last_error or 'it did not answer.'} They are sent when it "
            "answers again."
        )
    counts: dict[str, int | str] = {
        "queued": queued,
        "sent": report.sent,
        "acknowledged": report.acknowledged,
        "rejected": report.rejected,
        "failed": report.failed,
    }
    if report.errors:
        counts["errors"] = "\n".join(report.errors)
    return counts


# --- payments in ---------------------------------------------------------------------------------


@dataclass
class PullReport:
    seen: int = 0
    recorded: int = 0
    already_recorded: int = 0
    unmatched: int = 0
    held: int = 0  # for a fee this vendor does not manage: kept for staff, not posted
    pages: int = 0
    recorded_ids: list[str] = field(default_factory=list)
    #: The first few payments that could not be recorded, in words.
    errors: list[str] = field(default_factory=list)


def discrepancy_record(
    *,
    integration: Integration,
    kind: str,
    detail: str,
    fee_id: int | None = None,
    fee_ref: str = "",
    vendor_ref: str = "",
    repaired: bool = False,
) -> None:
    """Record a finding once while it is open (the partial unique constraint dedupes)."""
    Discrepancy.objects.bulk_create(
        [
            Discrepancy(
                integration=integration,
                kind=kind,
                fee_id=fee_id,
                fee_ref=fee_ref,
                vendor_ref=vendor_ref,
                detail=detail,
                repaired=repaired,
                resolved_at=timezone.now() if repaired else None,
            )
        ],
        ignore_conflicts=True,
    )


def _settle_rule(
    integration: Integration,
) -> tuple[Callable[[set[int]], set[int]], dict[int, str]]:
    """The `MovementSource.may_settle` of an integration: a vendor settles only fees in its
    scope that it was sent (it holds a SyncedFee row). Also returns, filled in as the door
    asks, why each other fee was refused (a `HeldMovement.Reason`)."""
    scope = Scope.of(integration)
    why: dict[int, str] = {}

    def may_settle(fee_ids: set[int]) -> set[int]:
        # One query for the usual page (every fee sent and in scope); only a page with a fee
        # it may not settle asks which half of the rule that fee breaks.
        sent = set(
            SyncedFee.objects.filter(integration=integration, fee_id__any=fee_ids)
            .filter(scope.q("fee__"))
            .values_list("fee_id", flat=True)
        )
        if rest := fee_ids - sent:
            in_scope = set(scope.fees().filter(pk__any=rest).values_list("pk", flat=True))
            why.update(dict.fromkeys(rest - in_scope, HeldMovement.Reason.OUT_OF_SCOPE))
            why.update(dict.fromkeys(in_scope, HeldMovement.Reason.NEVER_SENT))
        return sent

    return may_settle, why


def _held_detail(vendor: str, p: VendorPayment, reason: str) -> str:
    what = {
        MovementKind.PAYMENT: "a payment",
        MovementKind.WAIVER: "a waiver",
        MovementKind.REFUND: "a refund",
        MovementKind.VOID: "a void",
        MovementKind.RESTORE: "a restored waiver",
    }.get(MovementKind(p.kind), f"a {p.kind}")
    why = (
        f"which FeeSync never sent to {vendor}"
        if reason == HeldMovement.Reason.NEVER_SENT
        else f"which is outside what {vendor} manages (its categories or import-after date)"
    )
    return (
        f"{vendor} reported {what} of ${p.amount} ({p.payment_id}) for fee {p.fee_ref}, "
        f"{why}. Nothing was posted: apply it to the fee anyway, or dismiss it with a note."
    )


def _ledger_method(p: VendorPayment) -> str:
    """The `LedgerEntry.Method` a vendor movement is posted with: the vendor's own, or
    online (the vendor's own site) when it said none FeeSync knows."""
    return p.method if p.method in LedgerEntry.Method.values else LedgerEntry.Method.ONLINE


def _held_record(integration: Integration, held: list[tuple[VendorPayment, int, str]]) -> None:
    """Keep movements the door held, once per vendor id (a re-pull, or one staff have
    already dismissed, changes nothing)."""
    vendor = integration.vendor_name
    HeldMovement.objects.bulk_create(
        [
            HeldMovement(
                integration=integration,
                fee_id=fee_id,
                fee_ref=p.fee_ref,
                vendor_ref=p.payment_id,
                kind=str(p.kind),
                amount=p.amount,
                closed=p.closed,
                refers_to=p.refers_to or "",
                occurred_at=p.occurred_at,
                student_number=p.student_id,
                # Posted with it when staff apply it, as an applied line's entry has them.
                method=_ledger_method(p),
                note=p.note[:300],
                reason=reason,
                detail=_held_detail(vendor, p, reason),
            )
            for p, fee_id, reason in held
        ],
        ignore_conflicts=True,
    )


def _dismissed(integration: Integration, vendor_refs: Sequence[str]) -> set[str]:
    """Which of these vendor ids staff dismissed as held movements (one indexed query)."""
    if not vendor_refs:
        return set()
    return set(
        HeldMovement.objects.filter(
            integration=integration,
            status=HeldMovement.Status.DISMISSED,
            vendor_ref__in=list(vendor_refs),
        ).values_list("vendor_ref", flat=True)
    )


def _held_posted(integration: Integration, vendor_refs: Sequence[str]) -> None:
    """A movement held because its fee had not been sent yet (the vendor took the fee, but
    the worker died before recording the acknowledgement) is posted by a later pull once the
    acknowledgement is in: it is no longer waiting for staff (simulate --seed 4). One UPDATE
    a page; the common page has no held movement at all."""
    entry = LedgerEntry.objects.filter(
        external_source=integration.external_source, external_id=OuterRef("vendor_ref")
    ).values("pk")[:1]
    HeldMovement.objects.filter(
        integration=integration,
        status=HeldMovement.Status.OPEN,
        vendor_ref__in=list(vendor_refs),
    ).update(
        status=HeldMovement.Status.APPLIED,
        entry_id=Subquery(entry),
        resolved_at=timezone.now(),
        resolution_note="Posted by a later pull, once the fee's delivery to "
        f"{integration.vendor_name} was recorded.",
    )
    # Likewise a payment refused earlier (its fee not yet known, a refund pulled before its
    # payment) and recorded now: its "cannot record" finding is answered (simulate --seed 1).
    Discrepancy.objects.filter(
        integration=integration,
        kind=Discrepancy.Kind.UNMATCHED_PAYMENT,
        resolved_at__isnull=True,
        vendor_ref__in=list(vendor_refs),
    ).update(
        repaired=True,
        resolved_at=timezone.now(),
        resolution_note="Recorded by a later pull.",
    )


def _refund_finding(integration: Integration, p: VendorPayment, fee_id: int | None) -> None:
    """A refund made at the vendor leaves the fee owed again; staff decide whether it
    stays owed or the rest is waived (the finding's two actions on the dashboard)."""
    vendor = integration.vendor_name
    due = (
        Fee.objects.filter(pk=fee_id).values_list("balance", flat=True).first()
        if fee_id is not None
        else None
    )
    owed = f" ${due} is owed on it again." if due is not None else ""
    discrepancy_record(
        integration=integration,
        kind=Discrepancy.Kind.REFUNDED_AT_VENDOR,
        fee_id=fee_id,
        fee_ref=p.fee_ref,
        vendor_ref=p.payment_id,
        detail=f"Refunded at {vendor}: ${p.amount} of payment {p.refers_to or '(unknown)'} "
        f"on fee {p.fee_ref} was given back.{owed} Keep it owed, or waive the rest.",
    )


def payments_record(
    *,
    integration: Integration,
    payments: Sequence[VendorPayment],
    report: PullReport,
    adapter: VendorAdapter | None = None,
) -> None:
    """Record a page of vendor payments through the ledger's one door, each exactly once,
    and count what became of them. The door holds what the vendor may not settle (a fee
    outside its scope, or never sent to it): that is kept as a `HeldMovement` for staff.
    What was refused is a finding for staff; both are told back to the adapter
    (`movements_refused`: a file exchange writes its rejects file). A refund recorded is a
    finding too: the fee is owed again, and staff decide what happens to it."""
    report.seen += len(payments)
    first_recorded = len(report.recorded_ids)
    vendor = integration.vendor_name
    movements: list[Movement] = []
    unknown: dict[int, MovementOutcome] = {}  # index in `payments` -> refused here
    # A held movement staff dismissed stays unposted however often the vendor reports it,
    # also once its fee has been sent (a movement held as "never sent" is otherwise posted
    # by the first pull after the acknowledgement).
    dismissed = _dismissed(integration, [p.payment_id for p in payments])
    decided: set[int] = set()  # index in `payments` -> dismissed by staff: left alone
    for i, p in enumerate(payments):
        if p.payment_id in dismissed:
            decided.add(i)
            continue
        try:
            kind = MovementKind(p.kind)
        except ValueError:
            unknown[i] = MovementOutcome(
                p.payment_id,
                OutcomeStatus.REFUSED,
                f"{vendor} sent a {p.kind!r} record ({p.payment_id}), "
                "which FeeSync does not know how to post.",
            )
            continue
        movements.append(
            Movement(
                external_id=p.payment_id,
                kind=kind,
                fee_ref=p.fee_ref,
                amount=p.amount,
                closed=p.closed,
                refers_to=p.refers_to,
                occurred_at=p.occurred_at,
                student_number=p.student_id,
                method=_ledger_method(p),
                note=p.note,
            )
        )
    may_settle, why = _settle_rule(integration)
    source = MovementSource(
        external_source=integration.external_source,
        name=vendor,
        ledger_source=LedgerEntry.Source.VENDOR,
        may_settle=may_settle,
    )
    recorded = iter(movements_record(source=source, movements=movements))
    refused: list[RefusedMovement] = []
    held: list[tuple[VendorPayment, int, str]] = []
    for i, p in enumerate(payments):
        if i in decided:
            report.already_recorded += 1  # answered by staff: nothing to record
            continue
        outcome = unknown[i] if i in unknown else next(recorded)
        if outcome.status == OutcomeStatus.RECORDED:
            report.recorded += 1
            report.recorded_ids.append(p.payment_id)
            if p.kind == MovementKind.REFUND:
                _refund_finding(integration, p, outcome.fee_id)
        elif outcome.status == OutcomeStatus.ALREADY_RECORDED:
            report.already_recorded += 1
        elif outcome.status == OutcomeStatus.HELD and outcome.fee_id is not None:
            report.held += 1
            reason = why.get(outcome.fee_id, HeldMovement.Reason.OUT_OF_SCOPE)
            held.append((p, outcome.fee_id, reason))
            refused.append(RefusedMovement(p, _held_detail(vendor, p, reason), held=True))
        else:
            report.unmatched += 1
            if len(report.errors) < FIRST_ERRORS:
                report.errors.append(f"Payment {p.payment_id} not recorded: {outcome.reason}")
            refused.append(
                RefusedMovement(p, outcome.reason, held=outcome.status == OutcomeStatus.HELD)
            )
            discrepancy_record(
                integration=integration,
                kind=Discrepancy.Kind.UNMATCHED_PAYMENT,
                fee_id=outcome.fee_id,
                fee_ref=p.fee_ref,
                vendor_ref=p.payment_id,
                detail=outcome.reason,
            )
    if held:
        _held_record(integration, held)
    if posted := report.recorded_ids[first_recorded:]:
        _held_posted(integration, posted)
    if refused and adapter is not None:
        adapter.movements_refused(refused)


def payments_pull(
    *,
    integration: Integration,
    student_ids: Sequence[str] | None = None,
    from_start: bool = False,
    budget_seconds: float | None = None,
) -> PullReport:
    """Pull payments from the vendor and record them.

    With `student_ids` (student numbers): those students' payments, from the beginning (a
    clerk opening a fee page, a parent signing in). Without: everyone's, from the stored
    cursor (nightly), or from the beginning with `from_start` (validation)."""
    adapter = adapter_for(integration, timeout=budget_seconds)
    report = PullReport()
    use_cursor = student_ids is None and not from_start
    cursor = (integration.payment_cursor or None) if use_cursor else None
    deadline = time.monotonic() + budget_seconds if budget_seconds else None
    while True:
        page = adapter.pull_payments(cursor=cursor, student_ids=student_ids, limit=1000)
        report.pages += 1
        payments_record(
            integration=integration, payments=page.payments, report=report, adapter=adapter
        )
        if use_cursor and page.cursor:
            Integration.objects.filter(pk=integration.pk).update(payment_cursor=page.cursor)
        cursor = page.cursor
        if not page.has_more or (deadline and time.monotonic() > deadline):
            break
    Integration.objects.filter(pk=integration.pk).update(payments_pulled_at=timezone.now())
    return report


@dataclass
class PagePull:
    """What one integration answered for a page (`payments_pull_within`): its report, its
    error in plain words, or `late` (no answer before the page's deadline)."""

    integration: Integration
    report: PullReport | None = None
    error: str = ""
    late: bool = False


def _fetch_payments(
    adapter: VendorAdapter, student_ids: list[str], deadline: float
) -> list[VendorPayment]:
    """Runs in a pool thread: the vendor's answer only, no database (recording happens in
    the caller's thread, so it sees the caller's transaction)."""
    try:
        payments: list[VendorPayment] = []
        cursor: str | None = None
        while True:
            page = adapter.pull_payments(cursor=cursor, student_ids=student_ids, limit=1000)
            payments.extend(page.payments)
            cursor = page.cursor
            if not page.has_more or time.monotonic() > deadline:
                return payments
    finally:
        # Should an adapter ever touch the database, this thread's connection must not
        # outlive it (Django opens one per thread and closes it only at a request's end).
        connections.close_all()


def payments_pull_within(
    *, integrations: Sequence[Integration], student_ids: Sequence[str], seconds: float
) -> list[PagePull]:
    """Pull some students' payments from several integrations at once, all within one
    deadline of `seconds` however many vendors are slow (a person is waiting on a page).

    Each vendor is asked in a thread of its own with what is left of the deadline as its
    timeout and deadline (retries included: `adapter_for`); what answered in time is
    recorded here, through the one door, in the caller's thread. A vendor that did not
    answer in time is `late`: its thread is left to end by its own timeout and its answer
    is dropped (the next pull brings it in: recording is idempotent)."""
    deadline = time.monotonic() + seconds
    pool = ThreadPoolExecutor(
        max_workers=max(1, len(integrations)), thread_name_prefix="feesync-page-pull"
    )
    futures: dict[Future[list[VendorPayment]], tuple[Integration, VendorAdapter]] = {}
    pulls: list[PagePull] = []
    try:
        for integration in integrations:
            try:
                # Reading the credentials may already fail (a retired key): that vendor
                # gets its note, the others are still asked.
                adapter = adapter_for(integration, timeout=seconds)
            except VendorError as exc:
                pulls.append(PagePull(integration, error=exc.message))
                Integration.objects.filter(pk=integration.pk).update(
                    last_error=exc.message, last_error_at=timezone.now()
                )
                continue
            future = pool.submit(_fetch_payments, adapter, list(student_ids), deadline)
            futures[future] = (integration, adapter)
        done, _ = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for future, (integration, adapter) in futures.items():
        pull = PagePull(integration)
        pulls.append(pull)
        if future not in done:
            pull.late = True
            continue
        now = timezone.now()
        try:
            payments = future.result()
        except VendorError as exc:
            pull.error = exc.message
            Integration.objects.filter(pk=integration.pk).update(
                last_error=exc.message, last_error_at=now
            )
            continue
        pull.report = PullReport(pages=1)
        payments_record(
            integration=integration, payments=payments, report=pull.report, adapter=adapter
        )
        Integration.objects.filter(pk=integration.pk).update(payments_pulled_at=now)
    return pulls


# --- validation ----------------------------------------------------------------------------------


def validate(*, integration: Integration) -> dict[str, int]:
    """Compare both sides fee by fee; re-push what is missing or different, record payments
    the pulls missed, and report what cannot be fixed (fees only the vendor has)."""
    adapter = adapter_for(integration)
    vendor: dict[str, tuple[Decimal, Decimal, bool]] = {}
    counts = {
        "vendor_fees": 0,
        "foreign": 0,
        "missing": 0,
        "different": 0,
        "repushed": 0,
        "payments_missed": 0,
        "checked": 0,
    }
    cursor: str | None = None
    while True:
        page = adapter.list_fees(cursor=cursor)
        for vf in page.fees:
            counts["vendor_fees"] += 1
            if vf.foreign:
                counts["foreign"] += 1
                discrepancy_record(
                    integration=integration,
                    kind=Discrepancy.Kind.FOREIGN_FEE,
                    fee_ref=vf.fee_ref,
                    detail=f"{integration.vendor_name} has fee {vf.fee_ref} of ${vf.amount} for "
                    f"student {vf.student_id} that FeeSync never sent. FeeSync leaves it alone.",
                )
            else:
                vendor[vf.fee_ref] = (vf.amount, vf.amount_due, vf.active)
        cursor = page.cursor
        if not page.has_more:
            break

    # Payments first: a payment the pulls missed explains an amount-due difference.
    pulled = payments_pull(integration=integration, from_start=True)
    counts["payments_missed"] = pulled.recorded
    for payment_id in pulled.recorded_ids:
        discrepancy_record(
            integration=integration,
            kind=Discrepancy.Kind.PAYMENT_MISSED,
            vendor_ref=payment_id,
            repaired=True,
            detail=f"Payment {payment_id} was missed by the pulls and has "
            "been recorded by validation.",
        )

    repush: list[int] = []
    for pk, ref, amount, balance, status in (
        Scope.of(integration)
        .fees()
        .values_list("pk", "reference", "amount", "balance", "status")
        .iterator(chunk_size=5000)
    ):
        counts["checked"] += 1
        held = vendor.pop(ref, None)
        if held is None:
            counts["missing"] += 1
            repush.append(pk)
            discrepancy_record(
                integration=integration,
                kind=Discrepancy.Kind.MISSING_AT_VENDOR,
                fee_id=pk,
                fee_ref=ref,
                repaired=True,
                detail=f"{integration.vendor_name} did not have fee {ref}; it was sent again.",
            )
        elif held != (amount, balance, status == Fee.Status.OPEN):
            counts["different"] += 1
            repush.append(pk)
            discrepancy_record(
                integration=integration,
                kind=Discrepancy.Kind.DIFFERENT_AT_VENDOR,
                fee_id=pk,
                fee_ref=ref,
                repaired=True,
                detail=f"{integration.vendor_name} held fee {ref} as ${held[0]} with "
                f"${held[1]} due; FeeSync has ${amount} with ${balance} due. Sent again.",
            )
    if repush:
        with transaction.atomic():
            counts["repushed"] = outbox_enqueue(integration=integration, fee_ids=repush)
    return counts
