"""Integrations with payment vendors and the state of the sync engine.

* `Integration`: one vendor connection (PaySchools, Community Pass, ...) with its settings,
  encrypted credentials, scope (categories, import-after date) and parent-portal options.
* `OutboxItem`: "this fee must be (re)sent to this integration" — written in the same
  transaction as the change, delivered after commit, retried until acknowledged or parked.
* `SyncedFee`: which version of a fee the vendor has acknowledged.
* `TaskRun`: one run of an integration task (start, end, outcome, counts, error).
* `Discrepancy`: what validation or a pull found and could not fix by itself.
* `StudentVendorBalance` / `LunchBalance`: balances fetched from the vendor, with when.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.fees.models import MONEY, Fee
from apps.students.models import Student

from . import crypto


class Integration(models.Model):
    class VendorKind(models.TextChoices):
        PAYSCHOOLS = "payschools", "PaySchools"
        COMMUNITYPASS = "communitypass", "Community Pass"

    class TransferProtocol(models.TextChoices):
        NONE = "", "No demographics export"
        FTP = "ftp", "FTP"
        FTPS = "ftps", "FTPS (FTP over TLS)"
        SFTP = "sftp", "SFTP"

    vendor_kind = models.CharField(max_length=20, choices=VendorKind.choices)
    slug = models.SlugField(unique=True, help_text="Short name used in commands and URLs.")
    name = models.CharField(max_length=120)
    enabled = models.BooleanField(
        default=False, help_text="Fees are sent and payments pulled only while enabled."
    )
    service_url = models.URLField(
        "service URL",
        max_length=300,
        help_text="The vendor's API address (for PaySchools, the SOAP endpoint; the WSDL is "
        "read from it with ?wsdl).",
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="How long to wait for the vendor on each call.",
    )
    credentials_encrypted = models.TextField(blank=True, editable=False)

    # --- scope -----------------------------------------------------------------------------
    categories = models.ManyToManyField(
        FeeCategory,
        blank=True,
        related_name="integrations",
        help_text="Fee categories this integration sends. None selected: all categories.",
    )
    import_after = models.DateField(
        null=True,
        blank=True,
        help_text="Fees dated on or after this date in the selected categories will be sent; "
        "earlier fees never will.",
    )
    merchant_accounts = models.ManyToManyField(
        MerchantAccount, through="MerchantAccountMapping", blank=True, related_name="+"
    )

    # --- checks ----------------------------------------------------------------------------
    test_pull_ok = models.BooleanField(null=True, editable=False)
    test_pull_at = models.DateTimeField(null=True, editable=False)
    test_pull_detail = models.TextField(blank=True, editable=False)
    test_push_ok = models.BooleanField(null=True, editable=False)
    test_push_at = models.DateTimeField(null=True, editable=False)
    test_push_detail = models.TextField(blank=True, editable=False)

    # --- sync state --------------------------------------------------------------------------
    payment_cursor = models.CharField(max_length=200, blank=True, editable=False)
    payments_pulled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    backoff_until = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="While the vendor is failing, calls wait until then (capped exponential "
        "backoff with jitter) instead of hammering it.",
    )

    # --- parent portal -----------------------------------------------------------------------
    button_url = models.URLField(
        "parent button URL",
        max_length=300,
        blank=True,
        help_text="Where the pay button takes parents (the vendor's parent portal).",
    )
    button_text = models.CharField(
        "parent button text",
        max_length=60,
        blank=True,
        help_text='Empty: "Go to <vendor>".',
    )
    lunch_payment_url = models.URLField(max_length=300, blank=True)
    lunch_balance_threshold = models.DecimalField(
        **MONEY,
        default=Decimal("5.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="A lunch balance under this amount is shown in red.",
    )
    show_lunch_balance = models.BooleanField(default=False)
    sync_lunch_balance = models.BooleanField(
        default=False, help_text="Fetch lunch balances from the vendor every night."
    )
    show_vendor_balance = models.BooleanField(
        default=False, help_text="Show parents their whole account balance at the vendor."
    )
    lock_portal_on_balance = models.BooleanField(
        default=False,
        help_text="Lock parent portal sections while a vendor balance is outstanding, as for "
        "a district fee.",
    )
    balance_message = models.TextField(blank=True)
    parent_message = models.TextField(
        blank=True, help_text="Shown at the top of the parents' Fees and Fines page."
    )

    # --- demographics export -----------------------------------------------------------------
    transfer_protocol = models.CharField(
        max_length=4, choices=TransferProtocol.choices, blank=True, default=""
    )
    transfer_host = models.CharField(max_length=200, blank=True)
    transfer_port = models.PositiveIntegerField(null=True, blank=True)
    transfer_directory = models.CharField(max_length=200, blank=True, default=".")
    transfer_host_key = models.TextField(
        blank=True,
        help_text="SFTP only: the server's public host key (an OpenSSH line). It is pinned: "
        "a server presenting another key is refused.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("view_credentials", "Can see and change integration credentials"),
            ("run_integration_tasks", "Can run tests and tasks of an integration"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def external_source(self) -> str:
        """How this integration's postings are keyed in the ledger (stable across renames)."""
        return f"integration:{self.pk}"

    @property
    def vendor_name(self) -> str:
        return self.get_vendor_kind_display()

    @property
    def parent_button_text(self) -> str:
        return self.button_text or f"Go to {self.vendor_name}"

    # Credentials are a dict of the adapter's credential fields, stored encrypted.
    @property
    def credentials(self) -> dict[str, str]:
        return crypto.decrypt(self.credentials_encrypted)

    @credentials.setter
    def credentials(self, values: dict[str, str]) -> None:
        self.credentials_encrypted = crypto.encrypt(values)

    def masked_credentials(self) -> dict[str, str]:
        return {k: crypto.mask(v) for k, v in self.credentials.items()}


class MerchantAccountMapping(models.Model):
    """A district merchant account and the id the vendor knows it by."""

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="account_mappings"
    )
    merchant_account = models.ForeignKey(MerchantAccount, on_delete=models.PROTECT)
    vendor_merchant_id = models.CharField(
        "vendor's merchant ID",
        max_length=60,
        blank=True,
        help_text="Empty: the merchant account's own MID.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "merchant_account"], name="one_mapping")
        ]

    def __str__(self) -> str:
        mid = self.vendor_merchant_id or self.merchant_account.merchant_id
        return f"{self.merchant_account} → {mid}"


class OutboxItem(models.Model):
    """A fee waiting to be sent to an integration. One pending row per (integration, fee):
    later changes coalesce into it, and delivery always sends the fee's latest version."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        PARKED = "parked", "Parked after too many failures"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="outbox")
    fee = models.ForeignKey(Fee, on_delete=models.CASCADE, related_name="outbox_items")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    version = models.PositiveIntegerField(
        help_text="The fee version that made this row; delivery removes the row only once "
        "the vendor holds at least this version, so a change racing a delivery is kept."
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["integration", "state", "next_attempt_at"])]
        constraints = [
            models.UniqueConstraint(fields=["integration", "fee"], name="one_outbox_row_per_fee")
        ]

    def __str__(self) -> str:
        return f"{self.fee.reference} → {self.integration.slug} ({self.state})"


class SyncedFee(models.Model):
    """What the vendor has acknowledged of a fee."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="synced")
    fee = models.ForeignKey(Fee, on_delete=models.CASCADE, related_name="synced")
    acknowledged_version = models.PositiveIntegerField()
    first_sent_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField()
    vendor_caused_version = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Set when the vendor holds a version because it caused the change (a "
        "payment taken there), not because FeeSync sent it. Only meaningful while it "
        "equals acknowledged_version: a later delivery acknowledges a higher version.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "fee"], name="one_synced_row_per_fee")
        ]

    def __str__(self) -> str:
        return f"{self.fee_id} v{self.acknowledged_version} at {self.integration_id}"


class TaskRun(models.Model):
    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "Succeeded"
        FAILED = "failed", "Failed"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="runs")
    task = models.CharField(max_length=40)
    trigger = models.CharField(max_length=40, default="schedule")
    business_date = models.DateField(
        null=True, blank=True, help_text="Set for nightly runs: one per business date."
    )
    started = models.DateTimeField()
    finished = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started"]
        indexes = [models.Index(fields=["integration", "task", "-started"])]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "task", "business_date"],
                condition=Q(business_date__isnull=False),
                name="nightly_task_once_per_business_date",
            )
        ]

    def __str__(self) -> str:
        return f"{self.task} at {self.started:%Y-%m-%d %H:%M} – {self.get_outcome_display()}"


class Discrepancy(models.Model):
    class Kind(models.TextChoices):
        MISSING_AT_VENDOR = "missing_at_vendor", "Fee missing at the vendor"
        DIFFERENT_AT_VENDOR = "different_at_vendor", "Fee differs at the vendor"
        FOREIGN_FEE = "foreign_fee", "Fee only the vendor has"
        PAYMENT_MISSED = "payment_missed", "Payment the pulls missed"
        UNMATCHED_PAYMENT = "unmatched_payment", "Vendor payment FeeSync cannot record"
        REJECTED_FEE = "rejected_fee", "Fee the vendor refused"

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="discrepancies"
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)
    fee = models.ForeignKey(Fee, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    fee_ref = models.CharField(max_length=40, blank=True)
    vendor_ref = models.CharField(
        max_length=100, blank=True, help_text="The vendor's payment id, where there is one."
    )
    detail = models.TextField()
    repaired = models.BooleanField(
        default=False, help_text="FeeSync fixed it itself (kept for the record)."
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolution_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "discrepancies"
        constraints = [
            # A still-open finding is recorded once, however many nights it is seen again.
            models.UniqueConstraint(
                fields=["integration", "kind", "fee_ref", "vendor_ref"],
                condition=Q(resolved_at__isnull=True),
                name="one_open_discrepancy",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.fee_ref or self.vendor_ref}"


class FetchedBalance(models.Model):
    """A balance read from a vendor for one student, with when it was read."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    balance = models.DecimalField(**MONEY)
    fetched_at = models.DateTimeField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"${self.balance} at {self.fetched_at:%Y-%m-%d %H:%M}"


class StudentVendorBalance(FetchedBalance):
    """The whole account balance at the vendor, fees only the vendor has included."""

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="vendor_balances")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "student"], name="one_vendor_balance")
        ]


class LunchBalance(FetchedBalance):
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="lunch_balances")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "student"], name="one_lunch_balance")
        ]
