"""What the staff home (`/admin/`) shows a business office first: each integration's
health, today's payments by vendor and merchant account, and links to the work waiting
(parked changes, findings, money held). Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils import timezone

from apps.fees.models import LedgerEntry

from .display import when
from .models import Discrepancy, HeldMovement, Integration, OutboxItem


@dataclass(frozen=True)
class Health:
    integration: Integration
    last_sent: str
    last_pulled: str
    waiting: int
    parked: int
    findings: int
    held: int
    failing: bool
    dashboard_url: str
    parked_url: str
    findings_url: str
    held_url: str


@dataclass(frozen=True)
class PaymentsLine:
    vendor: str
    merchant_account: str
    count: int
    total: Decimal


def _changelist(model: str, **filters: Any) -> str:
    return reverse(f"admin:vendors_{model}_changelist") + "?" + urlencode(filters)


def integrations_health() -> list[Health]:
    """One line per integration, with its counts in four aggregate queries in all."""
    integrations = list(Integration.objects.order_by("-enabled", "name"))
    outbox = {
        (r["integration_id"], r["state"]): r["n"]
        for r in OutboxItem.objects.order_by()
        .values("integration_id", "state")
        .annotate(n=Count("id"))
    }
    findings = dict(
        Discrepancy.objects.filter(resolved_at__isnull=True)
        .order_by()
        .values_list("integration_id")
        .annotate(n=Count("id"))
    )
    held = dict(
        HeldMovement.objects.filter(status=HeldMovement.Status.OPEN)
        .order_by()
        .values_list("integration_id")
        .annotate(n=Count("id"))
    )
    return [
        Health(
            integration=i,
            last_sent=when(i.last_sent_at) if i.last_sent_at else "Never",
            last_pulled=when(i.payments_pulled_at) if i.payments_pulled_at else "Never",
            waiting=outbox.get((i.pk, OutboxItem.State.PENDING), 0),
            parked=outbox.get((i.pk, OutboxItem.State.PARKED), 0),
            findings=findings.get(i.pk, 0),
            held=held.get(i.pk, 0),
            failing=bool(i.consecutive_failures),
            dashboard_url=reverse("admin:vendors_integration_dashboard", args=[i.pk]),
            parked_url=_changelist("outboxitem", integration__id__exact=i.pk, state="parked"),
            findings_url=_changelist("discrepancy", integration__id__exact=i.pk, open="yes"),
            held_url=_changelist("heldmovement", integration__id__exact=i.pk, status="open"),
        )
        for i in integrations
    ]


def payments_today() -> list[PaymentsLine]:
    """Payments posted today (the district's day), by where they came from (a vendor, or
    staff at the counter) and the merchant account of the fee they paid."""
    today = timezone.localdate()
    start = timezone.make_aware(datetime.combine(today, time.min))
    names = {i.external_source: i.name for i in Integration.objects.all()}
    rows = (
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PAYMENT, created_at__gte=start)
        .order_by()
        .values("external_source", "fee__merchant_account__name")
        .annotate(n=Count("id"), total=Sum("amount"))
    )
    lines = [
        PaymentsLine(
            vendor=names.get(r["external_source"], "")
            or (r["external_source"] or "District staff"),
            merchant_account=r["fee__merchant_account__name"] or "No fee (credit on account)",
            count=r["n"],
            total=r["total"] or Decimal("0.00"),
        )
        for r in rows
    ]
    return sorted(lines, key=lambda line: (line.vendor, line.merchant_account))


def work_links() -> dict[str, tuple[int, str]]:
    """The lists a support engineer works from, with how many are waiting in each."""
    return {
        "Parked changes (need a retry)": (
            OutboxItem.objects.filter(state=OutboxItem.State.PARKED).count(),
            _changelist("outboxitem", state="parked"),
        ),
        "Open findings": (
            Discrepancy.objects.filter(resolved_at__isnull=True).count(),
            _changelist("discrepancy", open="yes"),
        ),
        "Unmatched vendor money (held for staff)": (
            HeldMovement.objects.filter(status=HeldMovement.Status.OPEN).count(),
            _changelist("heldmovement", status="open"),
        ),
        "Vendor payments FeeSync could not record": (
            Discrepancy.objects.filter(
                Q(resolved_at__isnull=True), kind=Discrepancy.Kind.UNMATCHED_PAYMENT
            ).count(),
            _changelist("discrepancy", open="yes", kind="unmatched_payment"),
        ),
    }
