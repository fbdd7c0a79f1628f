"""The staff site: Django's admin site, with the developer-only tables (sign-in lockouts,
the scheduler's internals, the sync engine's raw rows, the audit log's table, two-step
devices) out of the way.

Fees clerks and support staff never see them in the list of tables: what they need of the
sync engine reaches them through the staff home and the dashboards (the parked changes and
the outbox list behind those links stay theirs to open; see `tests/test_staff_urls.py`).
The district admin sees them under one "System" section at the end of the list, so the
tables a business office works from come first.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

#: (app label, model name) of every developer-only table; a whole app where the name is "".
SYSTEM_TABLES: frozenset[tuple[str, str]] = frozenset(
    {
        ("axes", ""),
        ("django_celery_beat", ""),
        ("auditlog", ""),
        ("otp_totp", ""),
        ("vendors", "outboxitem"),
        ("vendors", "syncedfee"),
    }
)


def is_system(app_label: str, model_name: str) -> bool:
    return (app_label, "") in SYSTEM_TABLES or (app_label, model_name) in SYSTEM_TABLES


def is_district_admin(user: Any) -> bool:
    from apps.fees.roles import DISTRICT_ADMIN

    return bool(user.is_superuser or user.groups.filter(name=DISTRICT_ADMIN).exists())


class FeeSyncAdminSite(admin.AdminSite):
    site_header = "FeeSync"
    site_title = "FeeSync staff"
    index_title = "District fees and payments"

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        admin_user = is_district_admin(request.user)
        if app_label is not None and admin_user:
            return apps  # the district admin's page of one app shows all of it
        kept: list[dict[str, Any]] = []
        system: list[dict[str, Any]] = []
        for app in apps:
            models = []
            for model in app["models"]:
                if is_system(app["app_label"], model["object_name"].lower()):
                    system.append({**model, "name": f"{model['name']} ({app['name']})"})
                else:
                    models.append(model)
            if models:
                kept.append({**app, "models": models})
        if system and admin_user:
            kept.append(
                {
                    "name": "System",
                    "app_label": "system",
                    # Not "": the app list marks an app whose URL is in the path as current.
                    "app_url": reverse(f"{self.name}:index") + "#system",
                    "has_module_perms": True,
                    "models": sorted(system, key=lambda m: m["name"]),
                }
            )
        return kept
