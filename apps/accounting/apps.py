from django.apps import AppConfig


class AccountingConfig(AppConfig):
    """The business office's side of the partner API, part 2: refunds, miscellaneous cash
    receipts, fund sources and student awards, banks, cashiering and the daily close."""

    name = "apps.accounting"
    label = "accounting"
    verbose_name = "Business office"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .checks import register_ledger_checks

        register_ledger_checks()
