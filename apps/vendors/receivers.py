"""Where the rest of FeeSync tells the sync engine that something happened."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.dispatch import receiver
from django.utils import timezone

from apps.fees.services import fee_changed

from . import engine, freshness, jobs
from .kinds.base import Capability
from .models import Integration, OutboxItem, SyncedFee
from .tasks import pull_payments_for_students


@receiver(fee_changed, dispatch_uid="vendors.enqueue_fee_changes")
def enqueue_fee_changes(
    sender: Any, fee_ids: list[int], reason: str, external_source: str = "", **kwargs: Any
) -> None:
    """Runs inside the transaction that changed the fees: the outbox row commits with them."""
    for integration in Integration.objects.filter(enabled=True, import_after__isnull=False):
        # A change the vendor itself caused (a payment taken there) is already known there,
        # where the vendor can be known to have counted it on FeeSync's figure.
        if (
            external_source
            and external_source == integration.external_source
            and _vendor_figure_follows_its_own_change(integration)
        ):
            _vendor_holds_its_own_change(integration, fee_ids)
            continue
        engine.outbox_enqueue(integration=integration, fee_ids=fee_ids)


def _vendor_figure_follows_its_own_change(integration: Integration) -> bool:
    """Whether a change the vendor reported itself may count as held there (not sent back).

    Not for a kind that takes fees as files (simulate --seed 1). A fee's export there is
    "acknowledged" once written, not once the financials side loaded it, so it may have
    taken its payment on an older line (the office's refund not loaded yet) and loaded
    the newer line after: that line's amount due does not count its payment, and nothing
    in it says so. It keeps the lesser of the line's figure and the amount less what it
    was paid itself, and the two sides differ for good ($10.87 there, $7.42 here). Each
    change it caused is therefore exported back, with the amount due that counts it."""
    return Capability.FILE_EXPORT not in integration.kind.capabilities


def _vendor_holds_its_own_change(integration: Integration, fee_ids: list[int]) -> None:
    """Record that the vendor holds the version its own change made, so that send-fees
    (which sends what the vendor holds at a lower version) does not send it back.

    Each `fee_changed` follows exactly one version step per fee, so only where the vendor
    held the version just before it: a fee with an earlier change not yet delivered (or
    never sent there: no SyncedFee row) still has that change to send. One UPDATE for the
    whole list (a nightly pull page changes a thousand fees).

    Such a fee's outbox row is raised to the fee's new version (simulate --seed 2). Its
    earlier change may be on the wire right now, read before the vendor's own change: the
    vendor takes that older figure over its own (a payment it voided shows settled again),
    and the acknowledgement of that older version would clear a row still at it, leaving
    the vendor's change unsent. At the new version the row outlives that acknowledgement
    and sends the fee as it is now. Only rows already queued, and not where the vendor
    held the version just before (nothing of FeeSync's is left to send). Race-free: this
    runs under the fee's row lock, and an acknowledgement takes the fees' locks first
    (`engine._fees_share_lock`), so it sees either the raised row or the vendor's change
    already counted."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One joined UPDATE over an array: the ORM's version (a subquery on F("fee__version")
        # with a thousand-item IN list) cost 50 ms a page of the nightly pull (pull_100k_s).
        with connection.cursor() as cursor:
            cursor.execute(_OUTBOX_KEEPS_CHANGE_SQL, [now, integration.pk, list(fee_ids)])
            cursor.execute(_HOLDS_OWN_CHANGE_SQL, [now, integration.pk, list(fee_ids)])
        return
    held_before = SyncedFee.objects.filter(
        integration=integration,
        fee_id=OuterRef("fee_id"),
        acknowledged_version=F("fee__version") - 1,
    )
    behind = (
        OutboxItem.objects.filter(
            integration=integration, fee_id__in=fee_ids, version__lt=F("fee__version")
        )
        .exclude(Exists(held_before))
        .values_list("pk", "fee__version")
    )
    for pk, version in list(behind):  # an UPDATE may not read the joined fee's version
        OutboxItem.objects.filter(pk=pk).update(version=version, updated_at=now)
    SyncedFee.objects.filter(
        integration=integration,
        fee_id__in=fee_ids,
        acknowledged_version=F("fee__version") - 1,
    ).update(
        acknowledged_version=F("acknowledged_version") + 1,
        vendor_caused_version=F("acknowledged_version") + 1,
        acknowledged_at=now,
    )


# Before _HOLDS_OWN_CHANGE_SQL, which raises the SyncedFee rows this one must skip.
_OUTBOX_KEEPS_CHANGE_SQL = """
UPDATE vendors_outboxitem AS o
SET version = f.version, updated_at = %s
FROM fees_fee AS f
WHERE o.integration_id = %s
  AND o.fee_id = ANY(%s::bigint[])
  AND f.id = o.fee_id
  AND o.version < f.version
  AND NOT EXISTS (
    SELECT 1 FROM vendors_syncedfee AS s
    WHERE s.integration_id = o.integration_id
      AND s.fee_id = o.fee_id
      AND s.acknowledged_version = f.version - 1
  )
"""

_HOLDS_OWN_CHANGE_SQL = """
UPDATE vendors_syncedfee AS s
SET acknowledged_version = s.acknowledged_version + 1,
    vendor_caused_version = s.acknowledged_version + 1,
    acknowledged_at = %s
FROM fees_fee AS f
WHERE s.integration_id = %s
  AND s.fee_id = ANY(%s::bigint[])
  AND f.id = s.fee_id
  AND s.acknowledged_version = f.version - 1
"""


@receiver(user_logged_in, dispatch_uid="vendors.pull_at_parent_login")
def pull_at_parent_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """A parent signed in: bring in their students' payments before the first page, within
    a short deadline (jobs.pull_at_parent_sign_in), and in the background from the vendors
    that did not answer in time (and for the balances)."""
    guardian = getattr(user, "guardian", None) if not user.is_staff else None
    if guardian is None:
        return
    numbers = list(guardian.students.values_list("student_number", flat=True))
    if not numbers:
        return
    pulled = jobs.pull_at_parent_sign_in(student_numbers=numbers)
    if pulled.unchecked and request is not None and hasattr(request, "session"):
        # The first page says which vendors' payments may not show yet (apps/portal/views.py).
        request.session["portal_unchecked_vendors"] = pulled.unchecked
    if pulled.background and request is not None and hasattr(request, "session"):
        # The pages watch for what the background pulls bring in, and update themselves
        # (apps/vendors/freshness.py).
        request.session["portal_watch_until"] = freshness.watch_until(pulled.background)
    for integration in pulled.background:
        transaction.on_commit(
            partial(pull_payments_for_students.delay, integration.pk, numbers, "parent login")
        )
