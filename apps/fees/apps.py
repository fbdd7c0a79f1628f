from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class FeesConfig(AppConfig):
    name = "apps.fees"
    verbose_name = "Fees and payments"

    def ready(self) -> None:
        # The task module registers run_bulk_job in every process (web, worker, tests), so
        # `bulk_job_start` can queue it by name and runs it eagerly where tasks are eager.
        from . import audit, tasks  # noqa: F401

        audit.register_audited_models()
        post_migrate.connect(_sync_groups, sender=self, dispatch_uid="fees.sync_staff_groups")


def _sync_groups(sender: AppConfig, **kwargs: Any) -> None:
    from .roles import sync_staff_groups

    sync_staff_groups(using=kwargs.get("using", "default"))
