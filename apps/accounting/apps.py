from django.apps import AppConfig


class AccountingConfig(AppConfig):
    """The business office's side of the partner API, part 2: refunds, miscellaneous cash
    receipts, fund sources and student awards, banks, cashiering and the daily close."""

    name = "apps.accounting"
    label = "accounting"
    verbose_name = "Business office"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from .checks import register_ledger_checks
        from .models import MiscCashReceipt

        register_ledger_checks()
        # A receipt is money that is on no ledger card: its changes are audited (who, when,
        # before, after) like a fee's. Refunds keep their own history (RefundChange).
        if not auditlog.contains(MiscCashReceipt):
            auditlog.register(MiscCashReceipt, exclude_fields=["updated_at"])
