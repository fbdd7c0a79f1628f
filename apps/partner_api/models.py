"""The partner API's own records: who may call it (API users and their application keys),
the responses it keeps for `Idempotency-Key` replays, and a log of calls for the
integration's dashboard. Money is not here: it is on the ledger (apps.fees)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

from apps.vendors.models import Integration

#: (codename, what it grants). Codenames are Anthology's operation names; a permission
#: group per section grants them all (migration 0002).
OPERATIONS: dict[str, str] = {
    "StudentAccounting.LedgerPaymentTransactions.Create": "Post payments to a student's ledger",
    "StudentAccounting.LedgerChargeOrAdjustmentTransactions.Create": (
        "Post charges and adjustments to a student's ledger"
    ),
    "StudentAccounting.LedgerTransactionsApplyPayments.Create": (
        "Apply payments and credit adjustments to charges"
    ),
    "StudentPaymentPlan.StudentPaymentPlan.Create": "Create student payment plans",
    "StudentPaymentPlan.StudentPaymentPlan.Update": "Update student payment plans",
    # Part 2 (issue 14): refunds, miscellaneous cash receipts, fund-source payments, OData.
    "StudentAccounting.ScheduledRefundsStatus.Update": (
        "Select scheduled refunds for processing (or release them)"
    ),
    "StudentAccounting.LedgerScheduledRefundTransactions.Create": "Post scheduled refunds as paid",
    "StudentAccounting.LedgerRefundTransactions.Create": "Post unscheduled refunds",
    "StudentAccounting.MiscCashReceipts.Create": "Post miscellaneous cash receipts",
    "StudentAccounting.MiscCashReceipts.Update": "Change miscellaneous cash receipts",
    "StudentAccounts.StudentAccountTransaction.New": (
        "Post unscheduled payments to a fund source (Student Accounts - Student Account "
        "Transaction - New)"
    ),
    "StudentAccounts.Refund.Query": "Query refunds (OData)",
    "StudentAccounts.BillingTransactionCode.Query": "Query billing transaction codes (OData)",
    "StudentAccounts.ScheduledDisbursement.Query": "Query scheduled payments (OData)",
    "StudentAccounts.StudentAward.Query": "Query student awards (OData)",
    "StudentAccounts.Student.Query": "Query students (OData)",
}

#: Group name -> the section its permissions start with.
GROUPS: dict[str, str] = {
    "API - Student Accounting": "StudentAccounting.",
    "API - Student Payment Plan": "StudentPaymentPlan.",
    "API - Student Accounts": "StudentAccounts.",
}


def group_for(codename: str) -> str:
    return next(name for name, prefix in GROUPS.items() if codename.startswith(prefix))


class ApiUser(models.Model):
    """A staff user flagged as a partner API user, tied to the vendor's integration (of kind
    "Partner API"), which fixes the merchant account and the fee categories it may post."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_user"
    )
    integration = models.ForeignKey(
        Integration,
        on_delete=models.PROTECT,
        related_name="api_users",
        help_text="The partner-API integration (the vendor) this user posts for.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API user"
        verbose_name_plural = "API users"
        permissions = list(OPERATIONS.items())

    def __str__(self) -> str:
        return f"{self.user} ({self.integration})"

    @property
    def external_source(self) -> str:
        """What its postings are keyed by on the ledger: a vendor transaction id is
        recorded once per API user, forever."""
        return f"apiuser:{self.pk}"


class PartnerApiKey(AbstractAPIKey):
    """An application key of an API user: stored hashed, only its prefix shown after it
    is issued; revoked in the admin."""

    api_user = models.ForeignKey(ApiUser, on_delete=models.CASCADE, related_name="keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "application key"
        verbose_name_plural = "application keys"


class IdempotencyRecord(models.Model):
    """The first response to a POST/PATCH that carried an `Idempotency-Key`, replayed to a
    retry with the same key and body. Kept at least FEESYNC_IDEMPOTENCY_HOURS."""

    api_user = models.ForeignKey(ApiUser, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    operation = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True)
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_user", "key"], name="idempotency_key_once")
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return self.key


class ApiCall(models.Model):
    """One call to the API, for the integration's dashboard (postings per day, refused
    calls with their reasons, the last error)."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    api_user = models.ForeignKey(ApiUser, on_delete=models.SET_NULL, null=True, related_name="+")
    operation = models.CharField(max_length=100)
    status_code = models.PositiveSmallIntegerField()
    reason = models.TextField(blank=True, help_text="Why it was refused, as the caller was told.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["integration", "created_at"])]

    def __str__(self) -> str:
        return f"{self.operation} {self.status_code}"


class ApiPosting(models.Model):
    """What the partner sent with a ledger entry it posted, beyond what the entry holds:
    its dates, payment type, term and cashiering properties (validated and stored; part 2
    builds the cash drawers)."""

    entry = models.OneToOneField(
        "fees.LedgerEntry", on_delete=models.PROTECT, primary_key=True, related_name="api_posting"
    )
    api_user = models.ForeignKey(ApiUser, on_delete=models.PROTECT, related_name="postings")
    operation = models.CharField(max_length=100)
    transaction_date = models.DateField()
    payment_type = models.CharField(max_length=20, blank=True)
    description = models.CharField(max_length=300, blank=True)
    term_id = models.CharField(max_length=40, blank=True)
    cash_drawer_id = models.PositiveIntegerField(null=True, blank=True)
    cashier_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["api_user", "created_at"])]

    def __str__(self) -> str:
        return f"{self.operation}: entry {self.entry_id}"
