"""Integrations with payment vendors and the state of the sync engine.

* `Integration`: one vendor connection (PaySchools, Community Pass, ...) with its settings,
  encrypted credentials, scope (categories, import-after date) and parent-portal options.
* `OutboxItem`: "this fee must be (re)sent to this integration" — written in the same
  transaction as the change, delivered after commit, retried until acknowledged or parked.
* `SyncedFee`: which version of a fee the vendor has acknowledged.
* `TaskRun`: one run of an integration task (start, end, outcome, counts, error).
* `Discrepancy`: what validation or a pull found and could not fix by itself.
* `HeldMovement`: money a vendor reported for a fee it does not manage, held for staff.
* `StudentVendorBalance` / `LunchBalance`: balances fetched from the vendor, with when.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.fees.models import MONEY, Fee, LedgerEntry
from apps.students.models import Student

from . import crypto
from .errors import CredentialsUnreadable
from .kinds.base import BALANCE_SETTINGS, LUNCH_SETTINGS, VendorAdapter
from .registry import get_adapter_class, kind_name, kinds

#: What a capability option reads as on a kind that does not declare it (lunch shown: no).
CAPABILITY_OPTION_DEFAULTS: dict[str, Any] = {
    name: setting.field.initial for name, setting in {**LUNCH_SETTINGS, **BALANCE_SETTINGS}.items()
}


def validate_vendor_kind(value: str) -> None:
    """The kind is a string checked against the registry (no migration per kind)."""
    if value not in kinds():
        known = ", ".join(sorted(kinds()))
        raise ValidationError(f"“{value}” is not an integration kind FeeSync knows ({known}).")


def option_json(value: Any) -> Any:
    """An option as stored in JSON: money as its exact string, never a float."""
    return str(value) if isinstance(value, Decimal) else value


def option_property(name: str, cast: Callable[[Any], Any] = str) -> property:
    """An option of `Integration.options` read and written as an attribute, with the kind's
    declared initial value when it was never set. A `property`, so that Django accepts it as
    a keyword of `Integration(...)` and `objects.create(...)`."""

    def fget(self: Integration) -> Any:
        return cast(self.option(name))

    def fset(self: Integration, value: Any) -> None:
        self.options = {**(self.options or {}), name: option_json(value)}

    return property(fget, fset, doc=f"The {name.replace('_', ' ')} option.")


class Integration(models.Model):
    class TransferProtocol(models.TextChoices):
        NONE = "", "No demographics export"
        FTP = "ftp", "FTP"
        FTPS = "ftps", "FTPS (FTP over TLS)"
        SFTP = "sftp", "SFTP"

    vendor_kind = models.CharField(
        "kind",
        max_length=40,
        validators=[validate_vendor_kind],
        help_text="Which integration kind this is (a key of apps.vendors.registry).",
    )
    slug = models.SlugField(unique=True, help_text="Short name used in commands and URLs.")
    name = models.CharField(max_length=120)
    enabled = models.BooleanField(
        default=False, help_text="Fees are sent and payments pulled only while enabled."
    )
    service_url = models.URLField(
        "service URL",
        max_length=300,
        help_text="The vendor's API address; the setup page says what it is for each kind "
        "(each kind's service_url_help).",
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="How long to wait for the vendor on each call.",
    )
    credentials_encrypted = models.TextField(blank=True, editable=False)
    options = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="The kind's declared non-secret settings (its secret ones are kept "
        "encrypted with the credentials).",
    )

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

    enabled_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When it was last switched on (the setup page says whether its tests had "
        "passed then).",
    )

    # --- sync state --------------------------------------------------------------------------
    last_sent_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the vendor last acknowledged a delivery (on change, by the sweeper or "
        "by a Send fees run).",
    )
    payment_cursor = models.CharField(max_length=200, blank=True, editable=False)
    export_sequence = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="The file exchange's last export file's sequence number (taken under the "
        "export lock, so two exports at once never write the same file name).",
    )
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
    delivering_until = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="A delivery to this vendor is running until then at the latest (its lease): "
        "a second one returns at once, so one vendor's backlog holds one worker, not all.",
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
    # Options of the lunch and balances capabilities, declared by the kinds that have them
    # (kinds.base.LUNCH_SETTINGS, BALANCE_SETTINGS) and kept in `options`.
    lunch_payment_url = option_property("lunch_payment_url")
    lunch_balance_threshold = option_property("lunch_balance_threshold", Decimal)
    show_lunch_balance = option_property("show_lunch_balance", bool)
    sync_lunch_balance = option_property("sync_lunch_balance", bool)
    show_vendor_balance = option_property("show_vendor_balance", bool)
    lock_portal_on_balance = option_property("lock_portal_on_balance", bool)
    balance_message = option_property("balance_message")

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
        return kind_name(self.vendor_kind)

    @property
    def kind(self) -> type[VendorAdapter]:
        """The kind's declaration (its adapter class) from the registry."""
        return get_adapter_class(self.vendor_kind)

    def option(self, name: str) -> Any:
        """A non-secret setting: the stored value, else the kind's declared initial value
        (else the capability's, for an option the kind does not declare)."""
        if name in (self.options or {}):
            return self.options[name]
        kind = kinds().get(self.vendor_kind)
        declared = kind.option_defaults() if kind else {}
        if name in declared:
            return option_json(declared[name])
        return option_json(CAPABILITY_OPTION_DEFAULTS.get(name, ""))

    @property
    def parent_button_text(self) -> str:
        return self.button_text or f"Go to {self.vendor_name}"

    # Credentials are a dict of the adapter's credential fields, stored encrypted.
    @property
    def credentials(self) -> dict[str, str]:
        """The decrypted credentials; raises `CredentialsUnreadable` (naming this
        integration) when no configured key opens them."""
        try:
            return crypto.decrypt(self.credentials_encrypted)
        except crypto.KeyMissing:
            raise CredentialsUnreadable(self.name) from None

    @credentials.setter
    def credentials(self, values: dict[str, str]) -> None:
        self.credentials_encrypted = crypto.encrypt(values)

    @property
    def credentials_problem(self) -> str:
        """Why the credentials cannot be read here, in plain words, or ""."""
        try:
            self.credentials  # noqa: B018 - reading them is the check
        except CredentialsUnreadable as exc:
            return exc.message
        return ""

    def masked_credentials(self) -> dict[str, str]:
        """What staff see of the secrets; none when they cannot be read (the page says why,
        from `credentials_problem`, and the form lets them be entered again)."""
        try:
            stored = self.credentials
        except CredentialsUnreadable:
            return {}
        return {k: crypto.mask(v) for k, v in stored.items()}


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
        PARKED = "parked", "Parked: needs a retry"

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


class DeliveryEvent(models.Model):
    """What happened when FeeSync sent a fee to a vendor, one row per fee per event, kept
    for good (append-only, never pruned): the fee's timeline reads its history here, since
    the outbox row holds only the latest state and is gone once delivered. The engine writes
    these in bulk, one INSERT per batch."""

    class Kind(models.TextChoices):
        FAILED = "failed", "Sending failed"
        PARKED = "parked", "Sending failed and parked"
        RETRIED = "retried", "Retried by staff"
        DELIVERED = "delivered", "Delivered"
        REFUSED = "refused", "Refused by the vendor"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    fee = models.ForeignKey(Fee, on_delete=models.CASCADE, related_name="delivery_events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The fee version sent, or acknowledged."
    )
    attempt = models.PositiveIntegerField(
        null=True, blank=True, help_text="Which attempt in a row failed (failures only)."
    )
    detail = models.TextField(blank=True, help_text="The error or the vendor's reason.")
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["fee", "integration", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: fee {self.fee_id} at {self.integration_id}"


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
        PARTLY = "partly", "Partly failed"
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
        REFUNDED_AT_VENDOR = "refunded_at_vendor", "Refunded at the vendor"
        UNREADABLE_FILE = "unreadable_file", "File that could not be read (quarantined)"

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


class HeldMovement(models.Model):
    """A payment, waiver or refund a vendor reported for a fee it does not manage (outside
    its scope, or never sent to it). Nothing was posted: staff apply it to the fee anyway,
    hold it (a payment) as the student's credit, or dismiss it, with a note. It keeps
    everything the ledger's door needs to post it later, and is held once per (integration,
    vendor id) however often it is pulled."""

    class Status(models.TextChoices):
        OPEN = "open", "Waiting for staff"
        APPLIED = "applied", "Applied to the fee"
        CREDITED = "credited", "Held as the student's credit"
        DISMISSED = "dismissed", "Dismissed"

    class Reason(models.TextChoices):
        OUT_OF_SCOPE = "out_of_scope", "The fee is outside this integration's scope"
        NEVER_SENT = "never_sent", "The fee was never sent to this vendor"

    #: The kinds whose ledger entry carries a payment method (a waiver's has none).
    METHOD_KINDS = ("payment", "refund")

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="held_movements"
    )
    fee = models.ForeignKey(Fee, on_delete=models.PROTECT, related_name="held_movements")
    fee_ref = models.CharField(max_length=40)
    vendor_ref = models.CharField(
        "vendor's id", max_length=100, help_text="The vendor's id for this movement."
    )
    kind = models.CharField(max_length=20, help_text="payment, waiver, refund, void, restore")
    amount = models.DecimalField(**MONEY)
    closed = models.BooleanField(
        default=False, help_text="The vendor said this payment settles the fee."
    )
    refers_to = models.CharField(
        max_length=100, blank=True, help_text="For a refund or void: the payment it gives back."
    )
    occurred_at = models.DateTimeField(null=True, blank=True)
    student_number = models.CharField(max_length=40, blank=True)
    # What an applied movement keeps on its ledger entry, kept here too so that the entry
    # staff post later says the same (a file line's method and reason).
    method = models.CharField(
        "payment method",
        max_length=10,
        choices=LedgerEntry.Method.choices,
        blank=True,
        help_text="How the money was taken at the vendor; posted with it.",
    )
    note = models.CharField(
        "vendor's note",
        max_length=300,
        blank=True,
        help_text="The vendor's own words about it (a file line's reason); posted with it.",
    )
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.TextField(help_text="Why it was held, in plain words.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    entry = models.ForeignKey(
        "fees.LedgerEntry",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The ledger entry that posted it, once applied.",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolution_note = models.TextField(blank=True)
    resolution_token = models.UUIDField(
        null=True,
        blank=True,
        unique=True,
        help_text="The one-time token of the staff form that resolved it: a repeat of that "
        "form is told what the first one did.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "held vendor movement"
        constraints = [
            # Pulled again (every night, every page view) it is the same held movement.
            models.UniqueConstraint(
                fields=["integration", "vendor_ref"], name="one_held_movement_per_vendor_id"
            )
        ]
        indexes = [models.Index(fields=["status", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.vendor_ref} of ${self.amount} on {self.fee_ref}"


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
