"""Reads about integrations: one integration at a glance (sync_status, the dashboard)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Min

from apps.fees.models import Fee, LedgerEntry

from .engine import fees_in_scope
from .models import Discrepancy, Integration, OutboxItem, SyncedFee, TaskRun
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


# --- a fee at the vendors (the fee's staff page) ------------------------------------------------
# Added with the staff setup screens (issue 5).


@dataclass(frozen=True)
class TimelineEvent:
    when: datetime
    text: str
    detail: str = ""
    level: str = ""  # "", "ok", "warn", "bad"


@dataclass(frozen=True)
class FeeAtVendor:
    integration: Integration
    in_scope: bool
    status: str
    flag: str  # the state in one or two words
    level: str  # "ok", "warn", "bad", ""
    vendor_version: int | None
    fee_version: int
    first_sent_at: datetime | None
    acknowledged_at: datetime | None
    outbox: OutboxItem | None
    payments: list[LedgerEntry]
    events: list[TimelineEvent]


def fee_sync_timeline(*, fee: Fee) -> list[FeeAtVendor]:
    """A fee's life at each vendor that manages it (or ever received it): when it was first
    sent and last acknowledged, which version the vendor holds, a change waiting or parked
    with its last error, findings, and the money that came back from that vendor. Only what
    was recorded; nothing is inferred (a payment does not record which pull brought it)."""
    synced = {s.integration_id: s for s in SyncedFee.objects.filter(fee=fee)}
    outbox = {o.integration_id: o for o in OutboxItem.objects.filter(fee=fee)}
    entries: dict[str, list[LedgerEntry]] = {}
    for entry in LedgerEntry.objects.filter(fee=fee, source=LedgerEntry.Source.VENDOR).order_by(
        "created_at", "id"
    ):
        entries.setdefault(entry.external_source, []).append(entry)
    findings: dict[int, list[Discrepancy]] = {}
    for d in Discrepancy.objects.filter(fee=fee).order_by("created_at"):
        findings.setdefault(d.integration_id, []).append(d)

    out: list[FeeAtVendor] = []
    for integration in Integration.objects.order_by("name"):
        pk = integration.pk
        in_scope = fees_in_scope(integration).filter(pk=fee.pk).exists()
        payments = entries.get(integration.external_source, [])
        if not (in_scope or pk in synced or pk in outbox or payments or pk in findings):
            continue
        vendor = integration.vendor_name
        s, o = synced.get(pk), outbox.get(pk)
        events: list[TimelineEvent] = []
        if s is not None and s.vendor_caused_version == s.acknowledged_version:
            # The version it holds came from its own change (a payment taken there), so
            # FeeSync did not send it back; the recorded time is when FeeSync learned that.
            events.append(TimelineEvent(s.first_sent_at, f"First sent to {vendor}", level="ok"))
            events.append(
                TimelineEvent(
                    s.acknowledged_at,
                    f"{vendor} already has version {s.acknowledged_version}: "
                    f"the change came from {vendor}",
                    level="ok",
                )
            )
        elif s is not None and s.acknowledged_at <= s.first_sent_at:
            # Acknowledged once so far: the first sending is the last acknowledgement.
            events.append(
                TimelineEvent(
                    s.acknowledged_at,
                    f"First sent to {vendor}; it acknowledged version {s.acknowledged_version}",
                    level="ok",
                )
            )
        elif s is not None:
            events.append(TimelineEvent(s.first_sent_at, f"First sent to {vendor}", level="ok"))
            events.append(
                TimelineEvent(
                    s.acknowledged_at,
                    f"{vendor} acknowledged version {s.acknowledged_version}",
                    level="ok",
                )
            )
        if o is not None:
            events.append(TimelineEvent(o.created_at, f"Version {o.version} queued for {vendor}"))
            if o.last_error:
                events.append(
                    TimelineEvent(
                        o.updated_at,
                        f"Sending failed (attempt {o.attempts})"
                        if o.state == OutboxItem.State.PENDING
                        else "Parked after too many failures",
                        o.last_error,
                        "bad" if o.state == OutboxItem.State.PARKED else "warn",
                    )
                )
        for entry in payments:
            events.append(
                TimelineEvent(
                    entry.created_at,
                    f"{entry.get_kind_display()} of ${entry.amount} recorded from {vendor}",
                    f"id at {vendor}: {entry.external_id}" if entry.external_id else "",
                )
            )
        for d in findings.get(pk, []):
            events.append(
                TimelineEvent(
                    d.created_at,
                    d.get_kind_display(),
                    d.detail,
                    "" if d.repaired or d.resolved_at else "warn",
                )
            )
            if d.resolved_at and not d.repaired:
                events.append(
                    TimelineEvent(d.resolved_at, "Finding marked resolved", d.resolution_note)
                )
        events.sort(key=lambda e: e.when)

        if o is not None and o.state == OutboxItem.State.PARKED:
            status = f"Parked: not sent after repeated failures. {o.last_error}"
            flag, level = "Parked", "bad"
        elif o is not None:
            status = f"Version {o.version} is waiting to be sent to {vendor}."
            if o.last_error:
                status += f" Last try failed: {o.last_error}"
            flag, level = "Waiting", "warn"
        elif s is not None and s.acknowledged_version >= fee.version:
            status = f"Up to date: {vendor} holds version {fee.version}."
            flag, level = "Up to date", "ok"
        elif s is not None:
            status = (
                f"{vendor} holds version {s.acknowledged_version}; FeeSync has version "
                f"{fee.version}. No change is waiting to be sent."
            )
            flag, level = "Sent", ""
        elif in_scope and not integration.enabled:
            status = f"Not sent: the {vendor} integration is not enabled."
            flag, level = "Not sent", ""
        elif in_scope:
            status, flag, level = f"Not sent to {vendor} yet.", "Not sent yet", "warn"
        else:
            status = "Outside this integration's scope (date or category)."
            flag, level = "Out of scope", ""
        if s is not None and not in_scope:
            status += " The fee is no longer in scope, so later changes are not sent."
        out.append(
            FeeAtVendor(
                integration=integration,
                in_scope=in_scope,
                status=status,
                flag=flag,
                level=level,
                vendor_version=s.acknowledged_version if s else None,
                fee_version=fee.version,
                first_sent_at=s.first_sent_at if s else None,
                acknowledged_at=s.acknowledged_at if s else None,
                outbox=o,
                payments=payments,
                events=events,
            )
        )
    return out
