"""The business office's records behind the partner API, part 2 (Anthology's payment-partner
use cases beyond payments and plans).

* Academic years, a student's enrollment periods and academic years, fund sources and the
  student awards a payment to a fund source is tied to (`PostAccountTransactionPayment`).
* Banks and bank accounts per school, each bank account tied to the merchant account the
  money is deposited in: the deposit report is what the bank statement shows.
* Cashiering: cash drawers per school, sessions a cashier opens, takes payments in, closes
  with counted totals, and a supervisor reconciles.
* Refunds owed to a student (the scheduled-refund cycle N → S → P, P → V by staff).
* Miscellaneous cash receipts: money on no student's card.
* The daily close: a business date released to the general ledger, after which its
  receipts and postings are locked.

Money on a student's card is still only `apps.fees.LedgerEntry`; what an entry needs beyond
it for the daily close (its business date, payment type, bank account, cash session and
student award) is an `EntryBooking` beside it, written once with the entry (posted entries
are immutable, so their context cannot be a later update). All of it is written by
`apps.accounting.services` only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.fees.models import MONEY, LedgerEntry
from apps.students.models import School, Student


class PaymentType(models.TextChoices):
    """Anthology's PaymentType letters, used by bookings, receipts and session totals."""

    CASH = "C", "Cash"
    EFT = "E", "EFT"
    CHECK = "H", "Check"
    ACH = "I", "ACH"
    CREDIT_CARD = "R", "Credit card"
    OTHER = "O", "Other"


# --- Academic years, enrollment periods, fund sources, awards -----------------------------


class AcademicYear(models.Model):
    code = models.CharField(max_length=7, unique=True, help_text="e.g. 2024-25.")
    name = models.CharField(max_length=60, blank=True)
    start_date = models.DateField()
    end_date = models.DateField()

    class Meta:
        ordering = ["start_date"]

    def __str__(self) -> str:
        return self.name or self.code


class EnrollmentPeriod(models.Model):
    """A student's enrollment at a school for a period (Anthology's StudentEnrollmentPeriod)."""

    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="enrollments")
    school = models.ForeignKey(School, on_delete=models.PROTECT, related_name="enrollments")
    name = models.CharField(max_length=80, blank=True, help_text="e.g. 2024-25 regular year.")
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["student", "start_date"]
        verbose_name = "enrollment period"

    def __str__(self) -> str:
        return self.name or f"{self.school} from {self.start_date}"


class StudentAcademicYear(models.Model):
    """The student's n-th academic year (Anthology's StudentAcademicYear and its
    AcademicYearSequence), within an enrollment period."""

    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="academic_years")
    enrollment_period = models.ForeignKey(
        EnrollmentPeriod, on_delete=models.PROTECT, related_name="academic_years"
    )
    academic_year = models.ForeignKey(AcademicYear, on_delete=models.PROTECT, related_name="+")
    sequence = models.PositiveSmallIntegerField(help_text="1 for the student's first year, …")

    class Meta:
        ordering = ["student", "sequence"]
        verbose_name = "student academic year"
        constraints = [
            models.UniqueConstraint(
                fields=["student", "sequence"], name="student_academic_year_sequence_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.student} year {self.sequence} ({self.academic_year})"


class FundSource(models.Model):
    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=120)
    gl_account = models.CharField(
        "GL account", max_length=40, blank=True, help_text="General-ledger account it posts to."
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"


class StudentAward(models.Model):
    """A fund source's award to a student for an enrollment period and award year: what a
    payment to a fund source is tied to. Created on the first payment if it does not exist."""

    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="awards")
    enrollment_period = models.ForeignKey(
        EnrollmentPeriod, on_delete=models.PROTECT, related_name="awards"
    )
    fund_source = models.ForeignKey(FundSource, on_delete=models.PROTECT, related_name="awards")
    award_year = models.CharField(max_length=7, help_text="####-##, e.g. 2024-25.")
    student_academic_year = models.ForeignKey(
        StudentAcademicYear,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="awards",
        help_text="The student academic year named by the payment that created it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["student", "award_year"]
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment_period", "fund_source", "award_year"],
                name="student_award_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.fund_source.code} {self.award_year} for {self.student}"


# --- Banks ----------------------------------------------------------------------------------


class Bank(models.Model):
    school = models.ForeignKey(School, on_delete=models.PROTECT, related_name="banks")
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["school", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.school})"


class BankAccount(models.Model):
    bank = models.ForeignKey(Bank, on_delete=models.PROTECT, related_name="accounts")
    name = models.CharField(max_length=120)
    number_last4 = models.CharField("last 4 digits", max_length=4, blank=True)
    merchant_account = models.ForeignKey(
        MerchantAccount,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="bank_accounts",
        help_text="The merchant account whose deposits land in this bank account.",
    )
    gl_account = models.CharField("GL account", max_length=40, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["bank", "name"]
        verbose_name = "bank account"

    def __str__(self) -> str:
        return f"{self.name} ({self.bank.name})"


# --- Cashiering -----------------------------------------------------------------------------


class CashDrawer(models.Model):
    school = models.ForeignKey(School, on_delete=models.PROTECT, related_name="cash_drawers")
    name = models.CharField(max_length=80)
    api_user = models.ForeignKey(
        "partner_api.ApiUser",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cash_drawers",
        help_text="Set aside for a vendor: its sessions are tied to this API user.",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["school", "name"]
        verbose_name = "cash drawer"

    def __str__(self) -> str:
        return f"{self.name} ({self.school})"


class CashDrawerSession(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        RECONCILED = "reconciled", "Reconciled"

    drawer = models.ForeignKey(CashDrawer, on_delete=models.PROTECT, related_name="sessions")
    cashier = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    api_user = models.ForeignKey(
        "partner_api.ApiUser",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cash_sessions",
        help_text="The vendor's API user this session takes payments for.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    counted = models.JSONField(
        default=dict, blank=True, help_text="Counted totals per payment type at close."
    )
    expected = models.JSONField(
        default=dict, blank=True, help_text="The session's entries' totals per payment type."
    )
    difference = models.DecimalField(**MONEY, null=True, blank=True)
    note = models.TextField(blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)
    reconciled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = "cash drawer session"
        permissions = [
            ("reconcile_cashdrawersession", "Reconcile cash drawer sessions (supervisor)")
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["drawer"], condition=Q(status="open"), name="one_open_session_per_drawer"
            )
        ]

    def __str__(self) -> str:
        return f"{self.drawer} session {self.pk} ({self.get_status_display()})"


# --- Bookings, refunds, receipts, releases --------------------------------------------------


class EntryBooking(models.Model):
    """What the daily close needs to know about a ledger entry, written with it."""

    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, primary_key=True, related_name="booking"
    )
    business_date = models.DateField(db_index=True)
    payment_type = models.CharField(max_length=1, choices=PaymentType.choices, blank=True)
    bank_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    cash_session = models.ForeignKey(
        CashDrawerSession,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="bookings",
    )
    student_award = models.ForeignKey(
        StudentAward, on_delete=models.PROTECT, null=True, blank=True, related_name="bookings"
    )
    # A refund paid out of the student's credit may be drawn from several payments, so it is
    # several refund entries (and its void as many reversing ones): this ties each to it.
    refund = models.ForeignKey(
        "Refund",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="bookings",
        help_text="The scheduled refund this entry pays (or voids).",
    )

    class Meta:
        verbose_name = "entry booking"

    def __str__(self) -> str:
        return f"Entry {self.entry_id} on {self.business_date}"


class Refund(models.Model):
    """A refund owed to a student. Scheduled by staff (status N), selected by a vendor for
    processing (S, or back to N), paid (P, with its refund entry on the card), voided by
    staff after payment (V, with a reversing entry)."""

    class Status(models.TextChoices):
        NOT_PROCESSED = "N", "Not processed"
        SELECTED = "S", "Selected for processing"
        PAID = "P", "Processed (paid)"
        VOIDED = "V", "Voided"

    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(**MONEY)
    due_date = models.DateField()
    fund_source = models.ForeignKey(
        FundSource, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds"
    )
    student_award = models.ForeignKey(
        StudentAward, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds"
    )
    status = models.CharField(
        max_length=1, choices=Status.choices, default=Status.NOT_PROCESSED, db_index=True
    )
    reason = models.CharField(max_length=300, blank=True)
    entry = models.OneToOneField(
        LedgerEntry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="scheduled_refund",
        help_text="The refund entry on the card (status P and V).",
    )
    void_entry = models.OneToOneField(
        LedgerEntry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="voided_refund",
        help_text="The reversing entry of a voided refund (status V).",
    )
    selected_by = models.ForeignKey(
        "partner_api.ApiUser",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="selected_refunds",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [models.Index(fields=["status", "due_date"], name="refund_status_due")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(
                condition=Q(status__in=["P", "V"], entry__isnull=False)
                | Q(status__in=["N", "S"], entry__isnull=True),
                name="refund_entry_when_paid",
            ),
            models.CheckConstraint(
                condition=Q(status="V", void_entry__isnull=False)
                | (~Q(status="V") & Q(void_entry__isnull=True)),
                name="refund_void_entry_when_voided",
            ),
        ]

    def __str__(self) -> str:
        return f"Refund ${self.amount} to {self.student} ({self.get_status_display()})"


class RefundChange(models.Model):
    """The refund's history: every status change, by whom."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="changes")
    from_status = models.CharField(max_length=1, blank=True)
    to_status = models.CharField(max_length=1)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    api_user = models.ForeignKey(
        "partner_api.ApiUser", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '–'} → {self.to_status}"


class GLRelease(models.Model):
    """A business date released to the general ledger, with the GL export file written for
    it. After it, that date's receipts and postings are locked."""

    business_date = models.DateField(unique=True)
    released_at = models.DateTimeField(auto_now_add=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    file_name = models.CharField(max_length=200, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    entry_count = models.PositiveIntegerField(default=0)
    receipt_count = models.PositiveIntegerField(default=0)
    debit_total = models.DecimalField(**MONEY, default=0)
    credit_total = models.DecimalField(**MONEY, default=0)

    class Meta:
        ordering = ["-business_date"]
        verbose_name = "general-ledger release"

    def __str__(self) -> str:
        return f"Released {self.business_date}"


class MiscCashReceipt(models.Model):
    """Money on no student's card: a facility rental, a donation, a vendor rebate. Its
    billing code's usage must be M (misc receipts) or A (all)."""

    billing_code = models.ForeignKey(
        FeeCategory, on_delete=models.PROTECT, related_name="misc_receipts"
    )
    amount = models.DecimalField(**MONEY)
    receipt_date = models.DateField(help_text="The business date it is deposited on.")
    payment_type = models.CharField(max_length=1, choices=PaymentType.choices)
    description = models.CharField(max_length=300, blank=True)
    payer = models.CharField(max_length=200, blank=True)
    bank_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    cash_session = models.ForeignKey(
        CashDrawerSession,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="receipts",
    )
    api_user = models.ForeignKey(
        "partner_api.ApiUser", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    external_id = models.CharField(
        max_length=100, blank=True, help_text="The vendor's own id for this receipt."
    )
    release = models.ForeignKey(
        GLRelease, on_delete=models.PROTECT, null=True, blank=True, related_name="receipts"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-receipt_date", "-id"]
        verbose_name = "miscellaneous cash receipt"
        indexes = [models.Index(fields=["receipt_date"], name="misc_receipt_date")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="misc_receipt_positive"),
            models.UniqueConstraint(
                fields=["api_user", "external_id"],
                condition=~Q(external_id=""),
                name="misc_receipt_external_once",
            ),
        ]

    def __str__(self) -> str:
        return f"Receipt ${self.amount} ({self.billing_code.code}) on {self.receipt_date}"
