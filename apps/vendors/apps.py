from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save


class VendorsConfig(AppConfig):
    name = "apps.vendors"
    verbose_name = "Payments"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        # Imported here, not at the top: an AppConfig module is loaded before the models.
        # The receivers connect themselves; the tasks are loaded in every process (not only
        # the worker) so that the engine's by-name queueing runs them eagerly where asked.
        from . import receivers, tasks  # noqa: F401
        from .checks import register_ledger_checks

        register_ledger_checks()
        from .models import HeldMovement, Integration, MerchantAccountMapping

        # Setup changes are audited; the credentials only ever as masked ciphertext.
        if not auditlog.contains(Integration):
            auditlog.register(
                Integration,
                mask_fields=["credentials_encrypted"],
                exclude_fields=[
                    "updated_at",
                    "payment_cursor",
                    "payments_pulled_at",
                    "last_error",
                    "last_error_at",
                    "consecutive_failures",
                    "backoff_until",
                    "delivering_until",
                    "last_sent_at",
                ],
                m2m_fields={"categories"},
            )
            auditlog.register(MerchantAccountMapping)
            # Staff deciding what becomes of money a vendor reported is audited.
            auditlog.register(HeldMovement)

        post_save.connect(
            _schedule_new_integration,
            sender=Integration,
            dispatch_uid="vendors.schedule_new_integration",
        )
        post_migrate.connect(
            _sync_all_schedules, sender=self, dispatch_uid="vendors.sync_all_schedules"
        )


# The receivers below import lazily for the same reason as ready(): models are not loaded
# when this module is.


def _schedule_new_integration(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    from .schedules import schedules_apply_prerequisites, schedules_sync

    if created:
        schedules_sync(integration=instance)
    else:
        # A setting a task depends on may have changed (a demographics server set up,
        # "Sync lunch balance" unchecked): its schedule follows.
        schedules_apply_prerequisites(integration=instance)


def _sync_all_schedules(sender, **kwargs):
    from .models import Integration
    from .schedules import schedules_apply_prerequisites, schedules_sync

    schedules_sync()
    for integration in Integration.objects.all():
        schedules_apply_prerequisites(integration=integration)
