from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class FeesConfig(AppConfig):
    name = "apps.fees"
    verbose_name = "Fees and payments"

    def ready(self) -> None:
        from . import audit

        audit.register_audited_models()
        post_migrate.connect(_sync_groups, sender=self, dispatch_uid="fees.sync_staff_groups")


def _sync_groups(sender: AppConfig, **kwargs: Any) -> None:
    from .roles import sync_staff_groups

    sync_staff_groups(using=kwargs.get("using", "default"))
