"""Staff's answers to money the sync engine would not decide by itself.

* A held movement (`HeldMovement`): a payment, waiver or refund a vendor reported for a fee
  it does not manage. Staff apply it to the fee anyway (posted once, through the ledger's
  one door, as the vendor's own posting) or dismiss it with a note.
* A refund made at the vendor (`Discrepancy.Kind.REFUNDED_AT_VENDOR`): the fee is owed again.
  Staff keep it owed (the finding is resolved with a note) or waive the rest (a waiver
  through the ledger's service, with the reason, resolving the finding).

Each answer is one atomic action, taken once: a second click finds it already done.
"""

from __future__ import annotations

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
    movement_record,
)

from .errors import IntegrationError
from .models import Discrepancy, HeldMovement


def _open_held(held: HeldMovement) -> HeldMovement:
    locked = HeldMovement.objects.select_for_update().select_related("integration").get(pk=held.pk)
    if locked.status != HeldMovement.Status.OPEN:
        raise IntegrationError(
            f"This {locked.kind} is no longer waiting: "
            f"{locked.get_status_display().lower()} already."
        )
    return locked


@transaction.atomic
def held_movement_apply(*, held: HeldMovement, user: Any, note: str = "") -> HeldMovement:
    """Post a held movement on its fee after all, whatever the integration's scope: through
    the one door, keyed by the vendor's id, so it is posted once however often it is asked
    (and a later pull finds it already recorded). Raises IntegrationError with the ledger's
    reason when the ledger refuses it (for example, more than is owed)."""
    held = _open_held(held)
    integration = held.integration
    source = MovementSource(  # no `may_settle`: staff decided this fee is the right one
        external_source=integration.external_source,
        name=integration.vendor_name,
        ledger_source=LedgerEntry.Source.VENDOR,
    )
    outcome = movement_record(
        source=source,
        movement=Movement(
            external_id=held.vendor_ref,
            kind=MovementKind(held.kind),
            fee_ref=held.fee_ref,
            amount=held.amount,
            closed=held.closed,
            refers_to=held.refers_to or None,
            occurred_at=held.occurred_at,
            student_number=held.student_number,
        ),
    )
    if outcome.status not in (OutcomeStatus.RECORDED, OutcomeStatus.ALREADY_RECORDED):
        raise IntegrationError(f"It was not applied: {outcome.reason}")
    held.status = HeldMovement.Status.APPLIED
    held.entry_id = outcome.entry_id
    held.resolved_at = timezone.now()
    held.resolved_by = user
    held.resolution_note = (note or "").strip() or f"Applied to fee {held.fee_ref}."
    held.save(update_fields=["status", "entry", "resolved_at", "resolved_by", "resolution_note"])
    return held


@transaction.atomic
def held_movement_dismiss(*, held: HeldMovement, user: Any, note: str) -> HeldMovement:
    """Leave a held movement unposted for good, with the note saying why (it stays
    dismissed however often the vendor reports it again)."""
    note = (note or "").strip()
    if not note:
        raise IntegrationError("Say why it is dismissed (a short note is kept with it).")
    held = _open_held(held)
    held.status = HeldMovement.Status.DISMISSED
    held.resolved_at = timezone.now()
    held.resolved_by = user
    held.resolution_note = note
    held.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_note"])
    return held


def _open_refund(discrepancy: Discrepancy) -> Discrepancy:
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
