"""Disputed fees (the file model's `dispute` and `restore`).

A family may dispute a fee with the district's financials office. While the dispute is
open the fee is shown as disputed to staff and parents, is not offered for payment and does
not lock the portal; a `restore` ends it. No money moves, so nothing is posted on the
ledger: the dispute is a `FeeDispute` row, recorded once per (source, id) like an entry.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Fee, FeeDispute
from .ledger import LedgerError


class DisputeAlreadyRecorded(Exception):
    """This report (source, id) is recorded already; `dispute` is the row it made."""

    def __init__(self, dispute: FeeDispute) -> None:
        super().__init__(dispute.pk)
        self.dispute = dispute


def dispute_reports_recorded(*, external_source: str, external_ids: list[str]) -> dict[str, int]:
    """{report id: fee id} of the dispute openings and endings this source has recorded."""
    if not external_ids:
        return {}
    wanted = set(external_ids)
    found: dict[str, int] = {}
    for opened, ended, fee_id in FeeDispute.objects.filter(
        # One array each (a file's batch is thousands of ids; `__in` binds each on its own).
        Q(external_id__any=list(wanted)) | Q(ended_external_id__any=list(wanted)),
        external_source=external_source,
    ).values_list("external_id", "ended_external_id", "fee_id"):
        if opened in wanted:
            found[opened] = fee_id
        if ended in wanted:
            found[ended] = fee_id
    return found


def _repeat(external_source: str, external_id: str) -> FeeDispute | None:
    return FeeDispute.objects.filter(
        Q(external_id=external_id) | Q(ended_external_id=external_id),
        external_source=external_source,
    ).first()


def fee_dispute_open(
    *, fee: Fee, external_source: str, external_id: str, reason: str = ""
) -> FeeDispute:
    """Mark the fee disputed. Raises `DisputeAlreadyRecorded` for a report recorded before,
    `LedgerError` when the fee cannot be disputed (it is already, or nothing is owed)."""
    with transaction.atomic():
        fee = Fee.objects.select_for_update().get(pk=fee.pk)
        if (done := _repeat(external_source, external_id)) is not None:
            raise DisputeAlreadyRecorded(done)
        if fee.disputed:
            raise LedgerError(f"Fee {fee.reference} is already disputed.")
        if fee.status != Fee.Status.OPEN:
            raise LedgerError(
                f"Fee {fee.reference} is {fee.get_status_display().lower()}: "
                "nothing is owed on it to dispute."
            )
        try:
            with transaction.atomic():
                dispute = FeeDispute.objects.create(
                    fee=fee,
                    reason=reason[:300],
                    external_source=external_source,
                    external_id=external_id,
                )
        except IntegrityError:
            if (done := _repeat(external_source, external_id)) is not None:
                raise DisputeAlreadyRecorded(done) from None
            raise
        Fee.objects.filter(pk=fee.pk).update(disputed=True)
    return dispute


def fee_dispute_end(*, fee: Fee, external_source: str, external_id: str) -> FeeDispute:
    """End the fee's open dispute. Raises `DisputeAlreadyRecorded` for a report recorded
    before, `LedgerError` when the fee has no open dispute."""
    with transaction.atomic():
        fee = Fee.objects.select_for_update().get(pk=fee.pk)
        if (done := _repeat(external_source, external_id)) is not None:
            raise DisputeAlreadyRecorded(done)
        dispute = FeeDispute.objects.filter(fee=fee, ended_at__isnull=True).first()
        if dispute is None:
            raise LedgerError(f"Fee {fee.reference} is not disputed.")
        dispute.ended_at = timezone.now()
        dispute.ended_external_id = external_id
        dispute.save(update_fields=["ended_at", "ended_external_id"])
        Fee.objects.filter(pk=fee.pk).update(disputed=False)
    return dispute
