"""Where the rest of FeeSync tells the sync engine that something happened."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver

from apps.fees.services import fee_changed

from . import engine
from .models import Integration
from .tasks import pull_payments_for_students


@receiver(fee_changed, dispatch_uid="vendors.enqueue_fee_changes")
def enqueue_fee_changes(
    sender: Any, fee_ids: list[int], reason: str, external_source: str = "", **kwargs: Any
) -> None:
    """Runs inside the transaction that changed the fees: the outbox row commits with them."""
    for integration in Integration.objects.filter(enabled=True, import_after__isnull=False):
        # A change the vendor itself caused (a payment taken there) is already known there.
        if external_source and external_source == integration.external_source:
            continue
        engine.outbox_enqueue(integration=integration, fee_ids=fee_ids)


@receiver(user_logged_in, dispatch_uid="vendors.pull_at_parent_login")
def pull_at_parent_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """A parent signed in: bring in their students' payments in the background."""
    guardian = getattr(user, "guardian", None) if not user.is_staff else None
    if guardian is None:
        return
    numbers = list(guardian.students.values_list("student_number", flat=True))
    if not numbers:
        return
    for integration_id in Integration.objects.filter(enabled=True).values_list("pk", flat=True):
        transaction.on_commit(
            lambda i=integration_id: pull_payments_for_students.delay(i, numbers, "parent login")
        )
