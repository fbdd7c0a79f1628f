"""Which integration (by name) receives a fee: for the add-fee form and its message, so
that a clerk charging a fee knows where parents will pay it, or that they pay the district.
Reads only; the rule is `Scope` (categories and import-after date of each enabled
integration, one vendor per fee)."""

from __future__ import annotations

from datetime import date
from typing import Any

from apps.categories.models import FeeCategory

from .display import long_date
from .models import Integration
from .scope import Scope


def _enabled_scopes() -> list[tuple[Integration, Scope]]:
    integrations = list(Integration.objects.filter(enabled=True).order_by("name"))
    scopes = Scope.of_each(integrations)
    return [(i, scopes[i.pk]) for i in integrations if scopes[i.pk].import_after is not None]


def fee_receivers(*, category_id: int, fee_date: date) -> list[Integration]:
    """The enabled integrations that will be sent a fee of this category and date (one,
    or none; more only where an overlap from before the one-vendor rule remains)."""
    return [
        i
        for i, s in _enabled_scopes()
        if s.import_after is not None
        and fee_date >= s.import_after
        and (not s.category_ids or category_id in s.category_ids)
    ]


def receivers_said(receivers: list[Integration]) -> str:
    if not receivers:
        return "No integration receives it: parents pay it to the district."
    return "It is sent to " + " and ".join(i.name for i in receivers) + "."


def routing_lines() -> list[str]:
    """Where each category's fees go, in words, for the add-fee form."""
    lines: list[str] = []
    everything: list[str] = []
    for integration, scope in _enabled_scopes():
        since = f" (fees dated on or after {long_date(scope.import_after)})"
        if not scope.category_ids:
            everything.append(integration.name + since)
            continue
        names = FeeCategory.objects.filter(pk__in=scope.category_ids).order_by("code")
        lines.append(", ".join(c.description for c in names) + f" → {integration.name}{since}")
    if everything:
        lines.append("Every other category → " + " and ".join(everything))
    else:
        lines.append("Every other category → no integration (parents pay the district)")
    return lines


def receiver_routes() -> list[dict[str, Any]]:
    """The same rule as `fee_receivers`, as data for the add-fee form's live hint
    (static/feesync/receiver.js): each enabled integration's name, its import-after date
    (ISO) and its categories (empty: every category)."""
    return [
        {
            "name": i.name,
            "import_after": s.import_after.isoformat() if s.import_after else None,
            "categories": sorted(s.category_ids),
        }
        for i, s in _enabled_scopes()
    ]
