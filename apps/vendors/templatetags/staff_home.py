"""`{% staff_home %}`: the business office's first screen, on the admin's index page."""

from __future__ import annotations

from typing import Any

from django import template

from apps.vendors.home import integrations_health, payments_today, work_links

register = template.Library()


@register.inclusion_tag("admin/vendors/_staff_home.html", takes_context=True)
def staff_home(context: dict[str, Any]) -> dict[str, Any]:
    user = context["request"].user
    sees_sync = user.has_perm("vendors.view_integration") or user.has_perm(
        "vendors.change_integration"
    )
    sees_money = user.has_perm("fees.view_ledgerentry")
    payments = payments_today() if sees_money else []
    return {
        "health": integrations_health() if sees_sync else None,
        "payments": payments,
        "sees_money": sees_money,
        "payments_total": sum((p.total for p in payments), start=0),
        "work": work_links() if sees_sync else None,
    }
