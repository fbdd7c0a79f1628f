"""Staff's answers to money the sync engine would not decide by itself.

* A held movement (`HeldMovement`): a payment, waiver or refund a vendor reported for a fee
  it does not manage. Staff apply it to the fee anyway (posted once, through the ledger's
  one door, as the vendor's own posting), hold it as the student's credit (a payment only:
  posted once through the same door on none of the student's fees, to apply to another fee
  or refund later), or dismiss it with a note.
* A refund made at the vendor (`Discrepancy.Kind.REFUNDED_AT_VENDOR`): the fee is owed again.
  Staff keep it owed (the finding is resolved with a note) or waive the rest (a waiver
  through the ledger's service, with the reason, resolving the finding).

Each answer is one atomic action, taken once: a second click finds it already done.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.fees.models import Fee, LedgerEntry
from apps.fees.services import (
    LedgerError,
    Movement,
    MovementKind,
    MovementSource,
    Origin,
    OutcomeStatus,
    fee_waive,
    movement_credit,
    movement_record,
)

from .errors import IntegrationError
from .models import Discrepancy, HeldMovement


class HeldAlreadyResolved(IntegrationError):
    """The held movement was dealt with already (by an earlier click, maybe this very form:
    compare `held.resolution_token` with the form's one-time token)."""

    def __init__(self, held: HeldMovement) -> None:
        super().__init__(
            f"This {held.kind} is no longer waiting: {held.get_status_display().lower()} already."
        )
        self.held = held


def _fee_first(fee_id: int | None) -> None:
    """Lock the finding's fee before the finding itself. Everything else that touches both
    takes the fee first (the ledger's services, a pull recording a movement, a delivery's
    acknowledgement), then the rows about it; a staff answer that locked the finding first
    and then its fee (to post or waive) deadlocked with a pull of the same fee (simulate
    --seed 1, a refund's "waive the rest")."""
    if fee_id is not None:
        list(Fee.objects.select_for_update().filter(pk=fee_id).values_list("pk", flat=True))


def _open_held(held: HeldMovement) -> HeldMovement:
    """The held movement, locked (after its fee): of two clicks at the same moment the
    second waits for the first to commit, then finds it resolved."""
    _fee_first(HeldMovement.objects.filter(pk=held.pk).values_list("fee_id", flat=True).first())
    locked = (
        HeldMovement.objects.select_for_update()
        .select_related("integration", "fee")
        .get(pk=held.pk)
    )
    if locked.status != HeldMovement.Status.OPEN:
        raise HeldAlreadyResolved(locked)
    return locked


def _source(held: HeldMovement) -> MovementSource:
    integration = held.integration
    return MovementSource(  # no `may_settle`: staff decided what this money is for
        external_source=integration.external_source,
        name=integration.vendor_name,
        ledger_source=LedgerEntry.Source.VENDOR,
    )


def _movement(held: HeldMovement) -> Movement:
    return Movement(
        external_id=held.vendor_ref,
        kind=MovementKind(held.kind),
        fee_ref=held.fee_ref,
        amount=held.amount,
        closed=held.closed,
        refers_to=held.refers_to or None,
        occurred_at=held.occurred_at,
        student_number=held.student_number,
        # Held before these were kept (or reported without one): the vendor's own site.
        method=held.method or LedgerEntry.Method.ONLINE,
        note=held.note,
    )


def _resolved(
    held: HeldMovement,
    *,
    status: str,
    user: Any,
    note: str,
    token: uuid.UUID | None,
    entry_id: int | None = None,
) -> HeldMovement:
    held.status = status
    held.entry_id = entry_id
    held.resolved_at = timezone.now()
    held.resolved_by = user
    held.resolution_note = note
    held.resolution_token = token
    held.save(
        update_fields=[
            "status",
            "entry",
            "resolved_at",
            "resolved_by",
            "resolution_note",
            "resolution_token",
        ]
    )
    return held


@transaction.atomic
def held_movement_apply(
    *, held: HeldMovement, user: Any, note: str = "", token: uuid.UUID | None = None
) -> HeldMovement:
    """Post a held movement on its fee after all, whatever the integration's scope: through
    the one door, keyed by the vendor's id, so it is posted once however often it is asked
    (and a later pull finds it already recorded). Raises IntegrationError with the ledger's
    reason when the ledger refuses it (for example, more than is owed). `token` is the
    staff form's one-time token, kept so that a repeat of that form shows the first result."""
    held = _open_held(held)
    outcome = movement_record(source=_source(held), movement=_movement(held))
    if outcome.status not in (OutcomeStatus.RECORDED, OutcomeStatus.ALREADY_RECORDED):
        raise IntegrationError(f"It was not applied: {outcome.reason}")
    return _resolved(
        held,
        status=HeldMovement.Status.APPLIED,
        user=user,
        note=(note or "").strip() or f"Applied to fee {held.fee_ref}.",
        token=token,
        entry_id=outcome.entry_id,
    )


@transaction.atomic
def held_movement_credit(
    *, held: HeldMovement, user: Any, token: uuid.UUID | None = None
) -> HeldMovement:
    """Keep a held payment whole as the student's credit instead of posting it on the fee
    it named: through the one door (`movement_credit`), keyed by the vendor's id, so it is
    recorded once however often it is asked, and a later pull of it finds it already
    recorded (it is never held again nor posted on the fee). Only a payment: a waiver or a
    refund brings no money. Raises IntegrationError with the reason when it cannot."""
    held = _open_held(held)
    if held.kind != MovementKind.PAYMENT:
        raise IntegrationError(
            f"Only a payment can be held as the student's credit; this is a {held.kind}."
        )
    outcome = movement_credit(
        source=_source(held), movement=_movement(held), student_id=held.fee.student_id
    )
    if outcome.status not in (OutcomeStatus.RECORDED, OutcomeStatus.ALREADY_RECORDED):
        raise IntegrationError(f"It was not kept as credit: {outcome.reason}")
    return _resolved(
        held,
        status=HeldMovement.Status.CREDITED,
        user=user,
        note=f"Held as the student's credit (${held.amount}), not posted on fee {held.fee_ref}.",
        token=token,
        entry_id=outcome.entry_id,
    )


@transaction.atomic
def held_movement_dismiss(
    *, held: HeldMovement, user: Any, note: str, token: uuid.UUID | None = None
) -> HeldMovement:
    """Leave a held movement unposted for good, with the note saying why (it stays
    dismissed however often the vendor reports it again)."""
    note = (note or "").strip()
    if not note:
        raise IntegrationError("Say why it is dismissed (a short note is kept with it).")
    held = _open_held(held)
    return _resolved(held, status=HeldMovement.Status.DISMISSED, user=user, note=note, token=token)


def _open_refund(discrepancy: Discrepancy) -> Discrepancy:
    _fee_first(
        Discrepancy.objects.filter(pk=discrepancy.pk).values_list("fee_id", flat=True).first()
    )
    locked = (
        Discrepancy.objects.select_for_update().select_related("integration").get(pk=discrepancy.pk)
    )
    if locked.kind != Discrepancy.Kind.REFUNDED_AT_VENDOR:
        raise IntegrationError("This finding is not a refund made at the vendor.")
    if locked.resolved_at is not None:
        raise IntegrationError("This refund has been dealt with already.")
    return locked


def _resolve(discrepancy: Discrepancy, user: Any, note: str) -> None:
    discrepancy.resolved_at = timezone.now()
    discrepancy.resolved_by = user
    discrepancy.resolution_note = note
    discrepancy.save(update_fields=["resolved_at", "resolved_by", "resolution_note"])


@transaction.atomic
def refund_keep_owed(*, discrepancy: Discrepancy, user: Any) -> Discrepancy:
    """After a refund at the vendor: the fee stays owed (as the refund left it)."""
    discrepancy = _open_refund(discrepancy)
    vendor = discrepancy.integration.vendor_name
    _resolve(discrepancy, user, f"Kept owed after the refund at {vendor}.")
    return discrepancy


@transaction.atomic
def refund_waive_rest(*, discrepancy: Discrepancy, user: Any) -> LedgerEntry:
    """After a refund at the vendor: waive what is owed on the fee now (a waiver by this
    user, with the reason), and resolve the finding. Raises IntegrationError when nothing
    is owed any more."""
    discrepancy = _open_refund(discrepancy)
    vendor = discrepancy.integration.vendor_name
    fee = Fee.objects.filter(pk=discrepancy.fee_id).first() if discrepancy.fee_id else None
    if fee is None:
        raise IntegrationError(f"FeeSync has no fee {discrepancy.fee_ref} to waive.")
    try:
        waiver = fee_waive(
            fee=fee,
            reason=f"Waived the rest after the refund at {vendor} ({discrepancy.vendor_ref}).",
            origin=Origin(user=user),
        )
    except LedgerError as exc:
        raise IntegrationError(" ".join(exc.messages)) from exc
    _resolve(discrepancy, user, f"Waived the rest (${waiver.amount}) after the refund at {vendor}.")
    return waiver
