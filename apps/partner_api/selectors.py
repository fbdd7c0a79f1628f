"""Reads for the Partner API integration's dashboard: postings per day, refused calls with
their reasons, and the last error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.fees.models import LedgerEntry
from apps.vendors.models import Integration

from .models import ApiCall, ApiUser


def partner_dashboard(*, integration: Integration, days: int = 14) -> dict[str, Any]:
    sources = [u.external_source for u in ApiUser.objects.filter(integration=integration)]
    since = timezone.now() - timedelta(days=days)
    per_day = list(
        LedgerEntry.objects.filter(external_source__in=sources, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("-day")
    )
    refused = list(
        ApiCall.objects.filter(integration=integration, status_code__gte=400)
        .select_related("api_user__user")
        .order_by("-created_at", "-id")[:20]
    )
    return {
        "api_users": ApiUser.objects.filter(integration=integration).select_related("user"),
        "postings_per_day": per_day,
        "refused_calls": refused,
        "last_error": refused[0] if refused else None,
        "calls_today": ApiCall.objects.filter(
            integration=integration, created_at__date=timezone.localdate()
        ).count(),
    }
