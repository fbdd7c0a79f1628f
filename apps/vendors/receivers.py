"""Where the rest of FeeSync tells the sync engine that something happened."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db import connection, transaction
from django.db.models import F
from django.dispatch import receiver
from django.utils import timezone

from apps.fees.services import fee_changed

from . import engine, freshness, jobs
from .models import Integration, SyncedFee
from .tasks import pull_payments_for_students


@receiver(fee_changed, dispatch_uid="vendors.enqueue_fee_changes")
def enqueue_fee_changes(
    sender: Any, fee_ids: list[int], reason: str, external_source: str = "", **kwargs: Any
) -> None:
    """Runs inside the transaction that changed the fees: the outbox row commits with them."""
    for integration in Integration.objects.filter(enabled=True, import_after__isnull=False):
        # A change the vendor itself caused (a payment taken there) is already known there.
        if external_source and external_source == integration.external_source:
            _vendor_holds_its_own_change(integration, fee_ids)
            continue
        engine.outbox_enqueue(integration=integration, fee_ids=fee_ids)


def _vendor_holds_its_own_change(integration: Integration, fee_ids: list[int]) -> None:
    """Record that the vendor holds the version its own change made, so that send-fees
    (which sends what the vendor holds at a lower version) does not send it back.

    Each `fee_changed` follows exactly one version step per fee, so only where the vendor
    held the version just before it: a fee with an earlier change not yet delivered (or
    never sent there: no SyncedFee row) still has that change to send. One UPDATE for the
    whole list (a nightly pull page changes a thousand fees)."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One joined UPDATE over an array: the ORM's version (a subquery on F("fee__version")
        # with a thousand-item IN list) cost 50 ms a page of the nightly pull (pull_100k_s).
        with connection.cursor() as cursor:
            cursor.execute(_HOLDS_OWN_CHANGE_SQL, [now, integration.pk, list(fee_ids)])
        return
    SyncedFee.objects.filter(
        integration=integration,
        fee_id__in=fee_ids,
        acknowledged_version=F("fee__version") - 1,
    ).update(
        acknowledged_version=F("acknowledged_version") + 1,
        vendor_caused_version=F("acknowledged_version") + 1,
        acknowledged_at=now,
    )


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
