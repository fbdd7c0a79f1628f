"""Reads about integrations: one integration at a glance (sync_status, the dashboard)."""

from __future__ import annotations

from typing import Any

from django.db.models import Min

from apps.fees.models import LedgerEntry

from .engine import fees_in_scope
from .models import Discrepancy, Integration, OutboxItem, TaskRun
from .services import tasks_for


def sync_status(*, integration: Integration) -> dict[str, Any]:
    """The keys of `manage.py sync_status --json` (DESIGN.md command contract)."""
    outbox = integration.outbox
    tasks: dict[str, Any] = {}
    for spec in tasks_for(integration):
        run = (
            TaskRun.objects.filter(integration=integration, task=spec.name)
            .order_by("-started")
            .first()
        )
        tasks[spec.name] = {
            "started": run.started.isoformat() if run else None,
            "finished": run.finished.isoformat() if run and run.finished else None,
            "outcome": run.outcome if run else None,
            "error": run.error if run else None,
        }
    oldest = outbox.filter(state=OutboxItem.State.PENDING).aggregate(m=Min("created_at"))["m"]
    return {
        "integration": integration.slug,
        "enabled": integration.enabled,
        "fees_in_scope": fees_in_scope(integration).count(),
        "fees_acknowledged": integration.synced.count(),
        "changes_waiting": outbox.filter(state=OutboxItem.State.PENDING).count(),
        "oldest_waiting": oldest.isoformat() if oldest else None,
        "changes_parked": outbox.filter(state=OutboxItem.State.PARKED).count(),
        "payments_recorded": LedgerEntry.objects.filter(
            external_source=integration.external_source
        ).count(),
        "discrepancies_open": Discrepancy.objects.filter(
            integration=integration, resolved_at__isnull=True
        ).count(),
        "last_error": integration.last_error,
        "tasks": tasks,
    }


def outage_message(*, integration: Integration) -> str:
    """The vendor's trouble in plain words, with what is waiting, for staff pages."""
    if not integration.consecutive_failures:
        return ""
    waiting = integration.outbox.filter(state=OutboxItem.State.PENDING).count()
    return (
        f"{integration.last_error} {waiting} change{'s' if waiting != 1 else ''} "
        f"{'are' if waiting != 1 else 'is'} waiting and will be sent when "
        f"{integration.vendor_name} answers again."
    )
