"""The ledger: fees (charges to a student) and the append-only entries that move money.

Modelled on Koha's account lines and account offsets, without Koha's mutable void:

* A `Fee` is the charge as staff and parents see it. Its `amount` and `balance` are kept in
  step with its entries by `apps.fees.services` (the only writer) and can always be
  recomputed from them (`manage.py ledger_check`).
* A `LedgerEntry` is money moving: a debit (charge, debit adjustment, refund, reversal) or a
  credit (payment, waiver, credit adjustment, void, settlement). Once posted it is never
  updated or deleted; on PostgreSQL and SQLite a trigger refuses it. A mistake is corrected
  by a reversing entry.
* An `Allocation` records which credit settled how much of which debit. What a payment
  from outside brought in beyond what its fee owed stays unallocated: the student's credit
  (`StudentCredit` keeps its sum), applied to another fee by a later allocation or paid out
  by a refund entry that is on no fee.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Final, TypedDict

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.students.models import Student, StudentList


class MoneyOptions(TypedDict):
    """The keyword arguments every money column (and money form field) shares."""

    max_digits: int
    decimal_places: int


MONEY: Final[MoneyOptions] = {"max_digits": 12, "decimal_places": 2}
ZERO = Decimal("0.00")


def new_fee_reference() -> str:
    """FeeSync's stable fee reference: what a vendor upserts by. Never reused or changed."""
    return "FS" + secrets.token_hex(6).upper()


class FeeAssignment(models.Model):
    """A fee assigned to a saved student list ("this fee" in the list actions)."""

    category = models.ForeignKey(FeeCategory, on_delete=models.PROTECT)
    merchant_account = models.ForeignKey(MerchantAccount, on_delete=models.PROTECT)
    description = models.CharField(max_length=200)
    amount = models.DecimalField(**MONEY)
    fee_date = models.DateField()
    due_date = models.DateField(null=True, blank=True)
    student_list = models.ForeignKey(
        StudentList, on_delete=models.PROTECT, related_name="fee_assignments"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="assignment_amount_positive")
        ]

    def __str__(self) -> str:
        return f"{self.description} (${self.amount}) → {self.student_list}"

    @property
    def follows_activity(self) -> bool:
        """Sports and activity fees follow students who join the activity later."""
        return self.student_list.activity_id is not None


class Fee(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        CLOSED = "closed", "Closed at vendor"
        WAIVED = "waived", "Waived"
        VOIDED = "voided", "Voided"

    reference = models.CharField(
        max_length=20,
        unique=True,
        default=new_fee_reference,
        editable=False,
        help_text="FeeSync's fee reference; vendors know the fee by it.",
    )
    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="fees")
    category = models.ForeignKey(FeeCategory, on_delete=models.PROTECT, related_name="fees")
    merchant_account = models.ForeignKey(
        MerchantAccount, on_delete=models.PROTECT, related_name="fees"
    )
    assignment = models.ForeignKey(
        FeeAssignment, on_delete=models.PROTECT, null=True, blank=True, related_name="fees"
    )
    description = models.CharField(max_length=200)
    amount = models.DecimalField(
        **MONEY, help_text="What the fee charges (the original charge plus adjustments)."
    )
    balance = models.DecimalField(**MONEY, help_text="What is still owed.")
    fee_date = models.DateField()
    due_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    amount_locked = models.BooleanField(
        default=False,
        help_text="Set once a vendor has taken a payment on this fee: its amount can no "
        "longer change.",
    )
    version = models.PositiveIntegerField(
        default=1, help_text="Raised on every change a vendor must see."
    )
    # Set and cleared only by apps.fees.services.dispute (the file model's dispute/restore).
    disputed = models.BooleanField(
        default=False,
        db_default=False,  # the set-wise INSERTs of services.bulk leave it out
        editable=False,
        help_text="The family disputes this fee: it is not offered for payment and does not "
        "lock the portal until the dispute ends.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-fee_date", "-id"]
        indexes = [
            models.Index(fields=["student", "status"]),
            models.Index(fields=["category", "fee_date"]),
            models.Index(fields=["status"]),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="fee_amount_not_negative"),
            models.CheckConstraint(condition=Q(balance__gte=0), name="fee_balance_not_negative"),
            models.CheckConstraint(
                condition=Q(balance__lte=F("amount")), name="fee_balance_within_amount"
            ),
            # One live fee per student per list assignment: assigning twice adds nothing.
            models.UniqueConstraint(
                fields=["assignment", "student"],
                condition=~Q(status="voided") & Q(assignment__isnull=False),
                name="one_live_fee_per_assignment_student",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.description} – {self.student.full_name} (${self.amount})"


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        # Debits: what increases what is owed.
        CHARGE = "charge", "Charge"
        DEBIT_ADJUSTMENT = "debit_adjustment", "Debit adjustment"
        REFUND = "refund", "Refund"
        REVERSAL = "reversal", "Reversal"
        # Credits: what settles what is owed.
        PAYMENT = "payment", "Payment"
        WAIVER = "waiver", "Waiver"
        CREDIT_ADJUSTMENT = "credit_adjustment", "Credit adjustment"
        VOID = "void", "Void"
        SETTLEMENT = "settlement", "Closed at vendor"

    DEBIT_KINDS = frozenset({"charge", "debit_adjustment", "refund", "reversal"})
    CREDIT_KINDS = frozenset({"payment", "waiver", "credit_adjustment", "void", "settlement"})

    class Method(models.TextChoices):
        CASH = "cash", "Cash"
        CHECK = "check", "Check"
        CARD = "card", "Card"
        ONLINE = "online", "Online (vendor)"

    class Source(models.TextChoices):
        STAFF = "staff", "District staff"
        VENDOR = "vendor", "Payment vendor"
        PARTNER_API = "partner_api", "Partner API"
        FILE_DROP = "file_drop", "File drop"
        SYSTEM = "system", "FeeSync"

    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="ledger_entries")
    fee = models.ForeignKey(
        Fee, on_delete=models.PROTECT, null=True, blank=True, related_name="entries"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = models.DecimalField(**MONEY)
    method = models.CharField(max_length=10, choices=Method.choices, blank=True)
    check_number = models.CharField(max_length=30, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.STAFF)
    external_source = models.CharField(
        max_length=60,
        blank=True,
        help_text="Who sent this entry from outside, e.g. 'integration:3'.",
    )
    external_id = models.CharField(
        max_length=100, blank=True, help_text="That sender's own transaction id."
    )
    reverses = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversed_by",
        help_text="For a refund or reversal: the credit it gives back.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["fee", "kind"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="entry_amount_positive"),
            # A vendor transaction is recorded once however often it arrives.
            models.UniqueConstraint(
                fields=["external_source", "external_id"],
                condition=~Q(external_id=""),
                name="external_transaction_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ${self.amount}"


class Allocation(models.Model):
    """`amount` of the credit entry `credit` settles part of the debit entry `debit`."""

    credit = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, related_name="allocations_out"
    )
    debit = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="allocations_in")
    amount = models.DecimalField(**MONEY)
    manual = models.BooleanField(
        default=False, help_text="Applied by hand; automatic application never moves it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive")
        ]

    def __str__(self) -> str:
        return f"${self.amount}: entry {self.credit_id} → entry {self.debit_id}"


class StudentCredit(models.Model):
    """The student's credit: money already taken (by a vendor, a file or the partner API)
    that no fee owed, held for the student until staff apply it to another fee or refund it.

    It is the unallocated part of the student's payment entries (an overpayment is posted
    whole, allocated to its fee for what was owed); `amount` keeps their sum so the staff
    list and the parent's page need no scan, and `ledger_check` proves the two agree. Kept
    by `apps.fees.services` only."""

    student = models.OneToOneField(
        Student, on_delete=models.PROTECT, primary_key=True, related_name="credit_account"
    )
    amount = models.DecimalField(**MONEY, default=ZERO, help_text="Credit on the account now.")
    since = models.DateTimeField(
        null=True, blank=True, help_text="When the account last went from no credit to some."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "credit"
        verbose_name_plural = "credits"
        ordering = ["since"]
        indexes = [models.Index(fields=["amount"], name="fees_credit_amount")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="credit_not_negative")
        ]

    def __str__(self) -> str:
        return f"Credit ${self.amount}"


class CreditApplication(models.Model):
    """Credit applied to a fee by `credit_apply`: the allocations it made carry no entry of
    their own, so this row is what records the application once. A staff form's one-time
    token is its `(external_source, external_id)`, unique like a ledger entry's, so a double
    submit finds the first application instead of applying the credit again."""

    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="+")
    fee = models.ForeignKey(Fee, on_delete=models.PROTECT, related_name="credit_applications")
    amount = models.DecimalField(**MONEY)
    external_source = models.CharField(max_length=60, blank=True)
    external_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_source", "external_id"],
                condition=~Q(external_id=""),
                name="credit_application_once",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_application_positive"),
        ]

    def __str__(self) -> str:
        return f"Credit of ${self.amount} applied"


class BulkJob(models.Model):
    """A long piece of work a clerk started (a bulk assignment), with its progress."""

    class Action(models.TextChoices):
        ASSIGN = "assign", "Assign this fee to the students of a list"
        REMOVE_UNPAID = "remove_unpaid", "Remove this fee from students who have not paid it"
        REMOVE_INACTIVE_UNPAID = (
            "remove_inactive_unpaid",
            "Remove this fee from inactive students who have not paid it",
        )

    class State(models.TextChoices):
        QUEUED = "queued", "Waiting to start"
        RUNNING = "running", "Running"
        DONE = "done", "Finished"
        FAILED = "failed", "Failed"

    assignment = models.ForeignKey(FeeAssignment, on_delete=models.CASCADE, related_name="jobs")
    action = models.CharField(max_length=30, choices=Action.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(
        default=0, help_text="Fees created or removed (students who already had it are skipped)."
    )
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} – {self.get_state_display()}"

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


class FeeDispute(models.Model):
    """A dispute of a fee, reported from outside (a file exchange's `dispute` line) and
    ended by a `restore`. Not money: nothing is posted, but each report is recorded once per
    (external_source, id), like a ledger entry, so a file dropped again changes nothing."""

    fee = models.ForeignKey(Fee, on_delete=models.PROTECT, related_name="disputes")
    reason = models.CharField(max_length=300, blank=True)
    external_source = models.CharField(max_length=40)
    external_id = models.CharField(max_length=100, help_text="The id of the report opening it.")
    opened_at = models.DateTimeField(auto_now_add=True)
    ended_external_id = models.CharField(
        max_length=100, blank=True, help_text="The id of the report that ended it."
    )
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_source", "external_id"], name="dispute_reported_once"
            ),
            models.UniqueConstraint(
                fields=["external_source", "ended_external_id"],
                condition=~Q(ended_external_id=""),
                name="dispute_ended_once",
            ),
            # At most one open dispute per fee.
            models.UniqueConstraint(
                fields=["fee"], condition=Q(ended_at__isnull=True), name="one_open_dispute"
            ),
        ]

    def __str__(self) -> str:
        return f"Dispute of {self.fee_id} ({'open' if self.ended_at is None else 'ended'})"


class PaymentPlan(models.Model):
    """A payment plan on the student's account: scheduled payments (installments) with the
    amounts and dates the family agreed to, posted by a partner (the partner API) or staff.

    The plan does not owe anything itself: the fees do. It says when money is expected, and
    each payment posted for an installment marks it paid (the schedule is auto-adjusted,
    `apps.fees.services.plans`). Paid installments are never changed or removed; the total
    (`total`) is what the plan's installments add up to, paid and still scheduled."""

    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="payment_plans")
    external_source = models.CharField(
        max_length=60, blank=True, help_text="Who created this plan from outside, e.g. 'apiuser:3'."
    )
    description = models.CharField(max_length=200, blank=True)
    total = models.DecimalField(**MONEY, help_text="Paid plus scheduled installments.")
    terms = models.JSONField(
        default=dict,
        blank=True,
        help_text="Interest-bearing terms as the partner sent them (rate, fees, dates), kept "
        "as given.",
    )
    version = models.PositiveIntegerField(default=1, help_text="Raised on every change.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="plan_total_not_negative")
        ]

    def __str__(self) -> str:
        return f"Payment plan {self.pk} for {self.student} (${self.total})"


class ScheduledPayment(models.Model):
    """One installment of a payment plan."""

    class Status(models.TextChoices):
        SCHEDULED = "S", "Scheduled"
        PAID = "P", "Paid"
        CANCELLED = "C", "Cancelled"

    plan = models.ForeignKey(PaymentPlan, on_delete=models.PROTECT, related_name="installments")
    amount = models.DecimalField(**MONEY)
    expected_date = models.DateField()
    status = models.CharField(max_length=1, choices=Status.choices, default=Status.SCHEDULED)
    payment = models.ForeignKey(
        LedgerEntry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="installments_paid",
        help_text="The payment entry that paid this installment (status P).",
    )
    split_from = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The installment this one is the remainder of, after a part payment.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["expected_date", "id"]
        indexes = [models.Index(fields=["plan", "status"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="installment_amount_positive"),
            models.CheckConstraint(
                condition=Q(status="P", payment__isnull=False) | ~Q(status="P"),
                name="paid_installment_has_payment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_status_display()} ${self.amount} on {self.expected_date}"


class PaymentPlanChange(models.Model):
    """The plan's history: what changed, and the whole schedule after it."""

    plan = models.ForeignKey(PaymentPlan, on_delete=models.CASCADE, related_name="changes")
    what = models.CharField(max_length=200)
    schedule = models.JSONField(help_text="[{id, amount, expected_date, status}] after it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.what


class ManualApplication(models.Model):
    """A ledger entry (a payment or credit adjustment, or a charge or debit adjustment)
    applied by hand: automatic application never takes from or gives to it again. Posted
    entries are immutable, so the flag lives beside the entry."""

    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, primary_key=True, related_name="manual_apply"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Manually applied: entry {self.entry_id}"
