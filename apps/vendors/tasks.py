"""Celery tasks of the sync engine. Thin: they take primary keys, call one service, and own
the retry policy. All of them are safe to run twice (acks_late redelivers after a crash)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import engine, jobs
from .errors import CredentialsUnreadable
from .kinds.base import VendorError
from .models import Integration, OutboxItem

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def deliver_outbox(integration_id: int) -> None:
    try:
        # Bounded: a big backlog is sent a few batches per task, each queueing the next, so
        # the workers take turns between vendors (see engine.deliver). Queue: "delivery".
        engine.deliver(
            integration_id=integration_id, max_batches=settings.FEESYNC_DELIVERY_BATCHES_PER_TASK
        )
    except CredentialsUnreadable as exc:
        # Retrying cannot help until staff act; they read why on the dashboard (and the
        # changes stay waiting, to be sent once the credentials can be read again).
        Integration.objects.filter(pk=integration_id).update(
            last_error=exc.message, last_error_at=timezone.now()
        )
        logger.error("deliver_outbox: %s", exc.message)


@shared_task(acks_late=True, ignore_result=True)
def sweep_outbox() -> None:
    """Every minute: trigger delivery wherever changes are due (after an outage, a crash,
    a lost task), so a backlog drains by itself. One task per integration, however many
    fees wait; none for an integration backing off (its delivery would only return)."""
    now = timezone.now()
    due = (
        OutboxItem.objects.filter(
            state=OutboxItem.State.PENDING, next_attempt_at__lte=now, integration__enabled=True
        )
        .exclude(integration__backoff_until__gt=now)
        # Without order_by() the model's ordering by id joins the DISTINCT: one row per fee.
        .order_by()
        .values_list("integration_id", flat=True)
        .distinct()
    )
    for integration_id in list(due):
        deliver_outbox.delay(integration_id)


@shared_task(acks_late=True, ignore_result=True)
def run_integration_task(
    integration_id: int, task: str, nightly: bool = False, trigger: str = "schedule"
) -> None:
    integration = Integration.objects.get(pk=integration_id)
    if not integration.enabled:
        return
    jobs.task_run(
        integration=integration,
        task=task,
        trigger=trigger,
        business_date=timezone.localdate() if nightly else None,
    )


@shared_task(acks_late=True, ignore_result=True)
def pull_payments_for_students(
    integration_id: int, student_numbers: list[str], trigger: str
) -> None:
    """A parent signed in: their students' payments, and (where the vendor reports them)
    their account balances, so the portal shows fresh figures whatever the schedule."""
    integration = Integration.objects.get(pk=integration_id)
    if not integration.enabled:
        return
    jobs.pull_for_students(
        integration=integration, student_numbers=student_numbers, trigger=trigger
    )
    if integration.show_vendor_balance or integration.lock_portal_on_balance:
        try:
            jobs.balances_refresh(integration=integration, student_numbers=student_numbers)
        except VendorError as exc:  # staff see it; the parent's page keeps the last figures
            Integration.objects.filter(pk=integration_id).update(
                last_error=exc.message, last_error_at=timezone.now()
            )
