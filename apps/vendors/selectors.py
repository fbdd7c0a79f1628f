"""Reads about integrations: one integration at a glance (sync_status, the dashboard), what
its setup page shows (tasks, scope, connection, recent changes), and a fee at the vendors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from auditlog.models import LogEntry as AuditEntry
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Min, Q
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from apps.fees.models import Fee, LedgerEntry

from .audit import setting_changes
from .display import (
    RunShown,
    next_run,
    option_shown,
    plural,
    run_shown,
    schedule_text,
    value_shown,
    when,
)
from .jobs import TASKS, prerequisite_missing, tasks_for
from .kinds.base import Capability
from .models import (
    DeliveryEvent,
    Discrepancy,
    HeldMovement,
    Integration,
    MerchantAccountMapping,
    OutboxItem,
    SyncedFee,
    TaskRun,
)
from .registry import get_adapter_class
from .schedules import periodic_tasks_of, schedule_form_value, schedule_name
from .scope import Scope


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
        "fees_in_scope": Scope.of(integration).fees().count(),
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
        # Money this vendor reported for fees it does not manage, waiting for staff.
        "movements_held": HeldMovement.objects.filter(
            integration=integration, status=HeldMovement.Status.OPEN
        ).count(),
        "last_error": integration.last_error,
        "tasks": tasks,
    }


def outbox_counts(*, integration: Integration) -> dict[str, int]:
    """Changes waiting (sent by themselves) and parked (sent only when retried), apart."""
    counts = dict(integration.outbox.order_by().values_list("state").annotate(n=Count("id")))
    return {
        "waiting": counts.get(OutboxItem.State.PENDING, 0),
        "parked": counts.get(OutboxItem.State.PARKED, 0),
    }


def _changes(n: int) -> str:
    return f"{n:,} change{'s' if n != 1 else ''} {'are' if n != 1 else 'is'}"


def outage_message(*, integration: Integration) -> str:
    """The vendor's trouble in plain words, with what is waiting, for staff pages."""
    if not integration.consecutive_failures:
        return ""
    counts = outbox_counts(integration=integration)
    text = (
        f"{integration.last_error} {_changes(counts['waiting'])} waiting and will be sent "
        f"when {integration.vendor_name} answers again."
    )
    if counts["parked"]:
        text += " " + parked_message(integration=integration, parked=counts["parked"])
    return text


def parked_message(*, integration: Integration, parked: int | None = None) -> str:
    """What parked changes mean, for the banner: they are not sent by themselves."""
    if parked is None:
        parked = outbox_counts(integration=integration)["parked"]
    if not parked:
        return ""
    return (
        f"{_changes(parked)} parked after repeated failures: "
        f"{'they are' if parked != 1 else 'it is'} not sent again until someone retries "
        f"{'them' if parked != 1 else 'it'} on the dashboard."
    )


def vendor_still_failing(*, integration: Integration) -> str:
    """When a retry would only fail again (the vendor failed its last delivery), the
    warning to give before and after retrying; else ""."""
    if not integration.consecutive_failures:
        return ""
    when_failed = when(integration.last_error_at) if integration.last_error_at else "lately"
    return (
        f"{integration.vendor_name} is still failing (last at {when_failed}: "
        f"{integration.last_error}). Retried changes are sent at once; if "
        f"{integration.vendor_name} still fails they wait again and park again after "
        f"{settings.FEESYNC_DELIVERY_MAX_ATTEMPTS} failed attempts."
    )


# --- the setup page and the dashboard -------------------------------------------------------------


@dataclass
class TaskRow:
    name: str
    label: str
    nightly: bool
    periodic: PeriodicTask | None
    enabled: bool
    schedule: str
    next_run: str
    runs: list[RunShown] = field(default_factory=list)
    changelist_url: str = ""
    #: Why the task is off whatever its schedule says (a prerequisite missing), or "".
    off_reason: str = ""
    #: The same work done since the last run without a run of its own (a delivery on
    #: change, a pull for a student page or a parent's sign-in), in words, or "".
    between_runs: str = ""
    #: How the setup page lets staff change the schedule: "interval" (minutes between
    #: runs), "times" (times of day), "" (not there); and its current value.
    schedule_kind: str = ""
    schedule_value: str = ""


def _between_runs(integration: Integration, task: str, last: TaskRun | None) -> str:
    """What the engine did for this task's purpose after its last recorded run: fees go
    out as they change and payments come in when a page is opened, so a nightly-looking
    "Last run" alone would say less than what happened."""
    since = last.started if last else None
    if task == "send-fees" and integration.last_sent_at:
        at = integration.last_sent_at
        if since is None or at > since:
            return f"Fees last sent {when(at)}, as they changed."
    if task == "get-payments" and integration.payments_pulled_at:
        at = integration.payments_pulled_at
        if since is None or (last is not None and last.finished and at > last.finished):
            return f"Payments last checked {when(at)} (a fee page or a parent's sign-in)."
    return ""


def task_rows(integration: Integration, *, runs: int = 1) -> list[TaskRow]:
    periodic = {p.name: p for p in periodic_tasks_of(integration)}
    base = reverse("admin:vendors_taskrun_changelist")
    rows: list[TaskRow] = []
    for spec in tasks_for(integration):
        p = periodic.get(schedule_name(integration, spec.label))
        recent = list(
            TaskRun.objects.filter(integration=integration, task=spec.name).order_by("-started")[
                : max(runs, 1)
            ]
        )
        off_reason = prerequisite_missing(integration, spec.name)
        schedule_kind, schedule_value = schedule_form_value(p)
        rows.append(
            TaskRow(
                name=spec.name,
                label=spec.label,
                nightly=spec.nightly,
                periodic=p,
                enabled=bool(p and p.enabled) and not off_reason,
                schedule=schedule_text(p, spec.default_schedule),
                next_run="Off" if off_reason else next_run(p)[1],
                runs=[run_shown(r) for r in recent[:runs]],
                off_reason=off_reason,
                between_runs=_between_runs(integration, spec.name, recent[0] if recent else None),
                schedule_kind=schedule_kind,
                schedule_value=schedule_value,
                changelist_url=base
                + "?"
                + urlencode({"integration__id__exact": integration.pk, "task": spec.name}),
            )
        )
    return rows


def state_text(integration: Integration) -> str:
    """What an enabled integration does, in the words of the banner atop its pages. A kind
    that exports files sends nothing as fees change: it says when it exports instead."""
    if Capability.FILE_EXPORT not in integration.kind.capabilities:
        return "fees are sent as they change and payments come back."
    spec = TASKS["export-fees"]
    periodic = next(
        (
            p
            for p in periodic_tasks_of(integration)
            if p.name == schedule_name(integration, spec.label)
        ),
        None,
    )
    last = (
        TaskRun.objects.filter(
            integration=integration,
            task__in=("export-fees", "export-all-fees"),
            outcome=TaskRun.Outcome.OK,
        )
        .order_by("-started")
        .first()
    )
    if last is None:
        done = "no export yet"
    else:
        counts = last.counts if isinstance(last.counts, dict) else {}
        rows = counts.get("rows")
        what = (
            f" ({counts.get('file')}, {plural(int(rows), 'fee')})"
            if counts.get("file") and isinstance(rows, int)
            else " (nothing had changed: no file)"
        )
        done = f"last export {when(last.started)}{what}"
    if periodic is None or not periodic.enabled:
        upcoming = "the export schedule is off: files go out only when staff export"
    else:
        upcoming = f"next export {next_run(periodic)[1]}"
    schedule = schedule_text(periodic, spec.default_schedule)
    return (
        f"fees in scope that changed are exported as a file on the schedule "
        f"({schedule[0].lower() + schedule[1:]}), not as they change; {done}; {upcoming}. "
        "Payments come back in result files."
    )


def scope_preview(integration: Integration, day: date) -> dict[str, int]:
    """What an import-after date would send with the categories chosen now."""
    scope = Scope.of(integration).with_date(day)
    in_scope, open_ = scope.q(), Q(status=Fee.Status.OPEN)
    return Fee.objects.filter(scope.categories_q()).aggregate(
        sent=Count("id", filter=in_scope),
        sent_open=Count("id", filter=in_scope & open_),
        never_open=Count("id", filter=~in_scope & open_),
    )


def connection_summary(integration: Integration) -> dict[str, Any]:
    """The connection section for people who may not edit credentials: secrets masked."""
    from .transfer import fingerprint

    adapter = get_adapter_class(integration.vendor_kind)
    masked = integration.masked_credentials()
    rows: list[tuple[str, str]] = [
        ("Service URL", integration.service_url),
        ("Timeout", plural(integration.timeout_seconds, "second")),
    ]
    rows += [
        (label, masked.get(key) or "Not set") for key, label in adapter.credential_labels().items()
    ]
    rows += [
        (str(setting.field.label), option_shown(integration.option(key)))
        for key, setting in adapter.settings_for(step="connection", secret=False).items()
    ]
    transfer: list[tuple[str, str]] = []
    if Capability.DEMOGRAPHICS in adapter.capabilities:
        key = integration.transfer_host_key
        try:
            key_text = fingerprint(key) if key else "Not set"
        except ValueError:
            key_text = "Not a valid key"
        port = integration.transfer_port
        transfer = [
            ("Protocol", integration.get_transfer_protocol_display()),
            ("Server", integration.transfer_host or "—"),
            ("Port", str(port) if port else "Default"),
            ("Directory", integration.transfer_directory or "."),
            ("Pinned host key", key_text),
            ("Username", masked.get("transfer_username") or "Not set"),
            ("Password", masked.get("transfer_password") or "Not set"),
        ]
    return {"rows": rows, "transfer": transfer}


def audit_trail(integration: Integration, limit: int = 12) -> list[dict[str, Any]]:
    """Recent setup changes from the audit log: the integration and its account mappings
    (a deleted mapping is found by the integration id recorded in its last state)."""
    ct_integration = ContentType.objects.get_for_model(Integration)
    ct_mapping = ContentType.objects.get_for_model(MerchantAccountMapping)
    own = list(
        AuditEntry.objects.filter(content_type=ct_integration, object_pk=str(integration.pk))
        .select_related("actor")
        .order_by("-timestamp")[:limit]
    )

    def of_this_integration(entry: AuditEntry) -> bool:
        values = (entry.changes_dict or {}).get("integration") or []
        return str(integration.pk) in [str(v) for v in values] or any(
            str(integration) == str(v) for v in values
        )

    mappings = [
        e
        for e in AuditEntry.objects.filter(content_type=ct_mapping)
        .select_related("actor")
        .order_by("-timestamp")[:200]
        if of_this_integration(e)
    ]
    entries = sorted(own + mappings, key=lambda e: e.timestamp, reverse=True)[:limit]
    defaults = integration.kind.option_defaults()
    out = []
    for entry in entries:
        changes = []
        # A creation or deletion is told by the object's name; field lists only for updates.
        is_update = entry.action == AuditEntry.Action.UPDATE
        # Options are one JSON field in the log: each setting's own before and after.
        changes_by_field = setting_changes(entry.changes_dict or {}, defaults=defaults)
        items = changes_by_field.items() if is_update else []
        for name, values in items:
            if name in {"updated_at", "created_at", "id", "integration"}:
                continue
            if isinstance(values, dict):  # a many-to-many change
                verb = "added" if values.get("operation") == "add" else "removed"
                changes.append((name, f"{verb}: {', '.join(values.get('objects', []))}", ""))
            elif name == "credentials_encrypted":
                changes.append(("credentials", "changed (secrets are never logged)", ""))
            elif isinstance(values, list) and len(values) == 2:
                changes.append(
                    (name.replace("_", " "), value_shown(values[0]), value_shown(values[1]))
                )
        out.append(
            {
                "when": when(entry.timestamp),
                "who": entry.actor.get_username() if entry.actor else "FeeSync",
                "what": entry.get_action_display(),
                "object": entry.object_repr,
                "changes": changes[:8],
            }
        )
    return out


def dashboard_records(*, integration: Integration) -> dict[str, Any]:
    """What the dashboard lists besides `sync_status`: whether a task is running now, the
    parked changes, the open findings (unmatched payments apart) and the money held for
    staff (movements on fees this vendor does not manage), 50 of each at most."""
    open_findings = Discrepancy.objects.filter(
        integration=integration, resolved_at__isnull=True
    ).order_by("-created_at")
    unmatched = open_findings.filter(kind=Discrepancy.Kind.UNMATCHED_PAYMENT)
    held = (
        HeldMovement.objects.filter(integration=integration, status=HeldMovement.Status.OPEN)
        .select_related("integration")
        .order_by("-created_at")
    )
    return {
        "running": TaskRun.objects.filter(
            integration=integration, outcome=TaskRun.Outcome.RUNNING
        ).exists(),
        "parked_items": list(
            integration.outbox.filter(state=OutboxItem.State.PARKED)
            .select_related("fee__student")
            .order_by("updated_at")[:50]
        ),
        "discrepancies": list(open_findings.exclude(kind=Discrepancy.Kind.UNMATCHED_PAYMENT)[:50]),
        "unmatched": list(unmatched[:50]),
        "unmatched_count": unmatched.count(),
        "held": list(held[:50]),
        "held_count": held.count(),
    }


# --- a fee at the vendors (the fee's staff page) ------------------------------------------------
# Added with the staff setup screens (issue 5).


@dataclass(frozen=True)
class TimelineEvent:
    when: datetime
    text: str
    detail: str = ""
    level: str = ""  # "", "ok", "warn", "bad"


_FAILURES = {DeliveryEvent.Kind.FAILED, DeliveryEvent.Kind.PARKED, DeliveryEvent.Kind.REFUSED}


def _delivery_event(e: DeliveryEvent, vendor: str, *, first: bool = False) -> TimelineEvent:
    """One row of a fee's delivery history, in words (`first`: its first delivery)."""
    version = f"version {e.version}" if e.version is not None else "the fee"
    if e.kind == DeliveryEvent.Kind.DELIVERED:
        text = (
            f"First sent to {vendor}; it acknowledged {version}"
            if first
            else f"Delivered: {vendor} acknowledged {version}"
        )
        return TimelineEvent(e.created_at, text, level="ok")
    if e.kind == DeliveryEvent.Kind.FAILED:
        text = f"Sending {version} to {vendor} failed (attempt {e.attempt}); it is tried again"
        return TimelineEvent(e.created_at, text, e.detail, "warn")
    if e.kind == DeliveryEvent.Kind.PARKED:
        text = (
            f"Sending {version} to {vendor} failed (attempt {e.attempt}) and it was parked: "
            "it needs a retry"
        )
        return TimelineEvent(e.created_at, text, e.detail, "bad")
    if e.kind == DeliveryEvent.Kind.REFUSED:
        return TimelineEvent(e.created_at, f"{vendor} refused {version}", e.detail, "bad")
    who = e.by.get_username() if e.by else "staff"
    return TimelineEvent(e.created_at, f"Retried by {who}: {version} is sent again")


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


def open_refund_findings(*, fee: Fee) -> list[Discrepancy]:
    """Refunds made at a vendor on this fee that staff have not answered yet ("keep it owed,
    or waive the rest"), oldest first, for the fee's page."""
    return list(
        Discrepancy.objects.select_related("integration")
        .filter(fee=fee, kind=Discrepancy.Kind.REFUNDED_AT_VENDOR, resolved_at__isnull=True)
        .order_by("created_at", "pk")
    )


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
    history: dict[int, list[DeliveryEvent]] = {}
    for event in DeliveryEvent.objects.filter(fee=fee).select_related("by"):
        history.setdefault(event.integration_id, []).append(event)

    out: list[FeeAtVendor] = []
    for integration in Integration.objects.order_by("name"):
        pk = integration.pk
        in_scope = Scope.of(integration).covers(fee)
        payments = entries.get(integration.external_source, [])
        sent = history.get(pk, [])
        if not (in_scope or pk in synced or pk in outbox or payments or pk in findings or sent):
            continue
        vendor = integration.vendor_name
        s, o = synced.get(pk), outbox.get(pk)
        first = next((e for e in sent if e.kind == DeliveryEvent.Kind.DELIVERED), None)
        events = [_delivery_event(e, vendor, first=e is first) for e in sent]
        delivered = any(e.kind == DeliveryEvent.Kind.DELIVERED for e in sent)
        failures = [e for e in sent if e.kind in _FAILURES]
        # When the last error happened: its history row, or (for errors from before the
        # history was kept) when the outbox row last changed.
        error_at = failures[-1].created_at if failures else o.updated_at if o else None
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
        elif delivered:
            pass  # each delivery is in the history, with the version it acknowledged
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
            if o.last_error and not failures:  # kept from before the history was
                events.append(
                    TimelineEvent(
                        o.updated_at,
                        f"Sending failed (attempt {o.attempts})"
                        if o.state == OutboxItem.State.PENDING
                        else "Parked after too many failures: needs a retry",
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
            status = (
                "Parked: not sent after repeated failures, and not sent again until "
                f"retried. Last error ({when(error_at)}): {o.last_error}"
            )
            flag, level = "Parked", "bad"
        elif o is not None:
            status = f"Version {o.version} is waiting to be sent to {vendor}."
            if o.last_error:
                status += f" Last try failed ({when(error_at)}): {o.last_error}"
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
