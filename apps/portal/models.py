"""What the parent portal keeps of its own: the district's lockout rule, the documents staff
share with a student's guardians (and who downloaded them), and the activities open for
sign-up (and who signed up, with the fee it charged).

The lockout rule lives here, as one row for the district, rather than in
`Integration.options`: it is the district's rule about its own fees and fines (which
categories count, above what amount, which sections close), true whatever vendors are
enabled, and there is no district-settings model to put it in. A vendor only contributes
to it: Community Pass's declared option `lock_portal_on_balance` (kinds.base.BALANCE_SETTINGS,
kept in that integration's options like the other balance options) adds the family's balance
at the vendor to the test, as if it was a district fee.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.core.validators import MinValueValidator
from django.db import models

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.fees.models import MONEY, Fee
from apps.students.models import Activity, Student

from .sections import CHILD_SECTIONS


class PortalLockout(models.Model):
    """The district's portal lockout (one row, pk 1; `PortalLockout.current()`)."""

    enabled = models.BooleanField(
        "lock portal sections while fees are owed",
        default=False,
        help_text="While a family owes more than the threshold, the sections chosen below are "
        "hidden from its parents, with a message saying why and how to unlock them. Fees and "
        "Fines is never locked.",
    )
    threshold = models.DecimalField(
        "lock when a family owes more than",
        **MONEY,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text="In dollars. 0.00 locks as soon as anything is owed; 25.00 leaves a family "
        "owing $25.00 or less unlocked.",
    )
    categories = models.ManyToManyField(
        FeeCategory,
        blank=True,
        related_name="+",
        help_text="Only open fees in these categories count. None selected: every category.",
    )
    locked_sections = models.JSONField(
        default=list,
        blank=True,
        help_text="The portal sections hidden while locked (slugs of apps.portal.sections).",
    )
    unlock_message = models.TextField(
        blank=True,
        help_text="Added to the lock message, e.g. who to call to arrange a payment plan.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "portal lockout"
        verbose_name_plural = "portal lockout"

    def __str__(self) -> str:
        return "Portal lockout"

    @classmethod
    def current(cls) -> PortalLockout:
        """The district's row, created (off) the first time it is asked for."""
        row, _ = cls.objects.get_or_create(pk=1)
        return row

    def section_titles(self) -> list[str]:
        return [s.title for s in CHILD_SECTIONS if s.slug in (self.locked_sections or [])]


class DocumentStorage(FileSystemStorage):
    """Documents are kept outside the static and media URLs: they are only ever read by the
    authorized, logged download views, never served as files. The folder is read from the
    settings on each use (FEESYNC_DOCUMENTS_ROOT), so tests can point it elsewhere."""

    @property
    def base_location(self) -> str:
        return str(settings.FEESYNC_DOCUMENTS_ROOT)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    @property
    def base_url(self) -> None:  # type: ignore[override]
        return None


def _document_path(instance: StudentDocument, filename: str) -> str:
    # Per student, under a random-free readable name; FileSystemStorage adds a suffix
    # when the name is taken, so one upload never replaces another.
    return f"students/{instance.student_id}/{os.path.basename(filename)}"


class StudentDocument(models.Model):
    """A document staff share with one student's guardians: a report card, a letter, a form."""

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(
        max_length=120, help_text="What parents see, e.g. “Report card, term 1”."
    )
    file = models.FileField(
        upload_to=_document_path,
        storage=DocumentStorage(),
        max_length=300,
        help_text="PDF, image or office document, at most 10 MB.",
    )
    note = models.CharField(
        max_length=200, blank=True, help_text="Optional line shown under the title."
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at", "-pk"]
        verbose_name = "student document"
        indexes = [models.Index(fields=["student", "-uploaded_at"])]

    def __str__(self) -> str:
        return f"{self.title} ({self.student})"

    @property
    def filename(self) -> str:
        return os.path.basename(self.file.name or "")


class DocumentDownload(models.Model):
    """One download of a document: who, when, and as a guardian or as staff. Kept when the
    document is deleted (its title and student are copied), so the log stays whole."""

    class As(models.TextChoices):
        GUARDIAN = "guardian", "Guardian (parent portal)"
        STAFF = "staff", "District staff"

    document = models.ForeignKey(
        StudentDocument, on_delete=models.SET_NULL, null=True, related_name="downloads"
    )
    document_title = models.CharField(max_length=120)
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    downloaded_as = models.CharField(max_length=10, choices=As.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "document download"

    def __str__(self) -> str:
        return f"{self.document_title} by {self.user} at {self.at:%Y-%m-%d %H:%M}"


class ActivityOffer(models.Model):
    """An activity open for sign-up in the parent portal, with the fee signing up charges."""

    activity = models.ForeignKey(Activity, on_delete=models.PROTECT, related_name="offers")
    title = models.CharField(
        max_length=120, help_text="What parents see, e.g. “Fall soccer, grades 6–8”."
    )
    details = models.TextField(blank=True, help_text="When and where it meets, what to bring.")
    fee_description = models.CharField(
        max_length=200, help_text="The description of the fee signing up charges."
    )
    fee_amount = models.DecimalField(
        **MONEY,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Charged once per student on sign-up, through the ledger (and so sent to "
        "the vendor that collects this category).",
    )
    category = models.ForeignKey(FeeCategory, on_delete=models.PROTECT, related_name="+")
    merchant_account = models.ForeignKey(
        MerchantAccount, on_delete=models.PROTECT, related_name="+"
    )
    opens_on = models.DateField(help_text="First day parents can sign up.")
    closes_on = models.DateField(
        null=True, blank=True, help_text="Last day parents can sign up. Empty: no end."
    )
    due_days = models.PositiveSmallIntegerField(
        default=14, help_text="The fee is due this many days after signing up."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["opens_on", "title"]
        verbose_name = "activity open for sign-up"
        verbose_name_plural = "activities open for sign-up"

    def __str__(self) -> str:
        return self.title

    def is_open(self, day: Any) -> bool:
        return self.opens_on <= day and (self.closes_on is None or day <= self.closes_on)

    def admits(self, student: Student) -> bool:
        """A school's activity is for that school's students; a district one for everyone."""
        return self.activity.school_id is None or self.activity.school_id == student.school_id


class ActivitySignup(models.Model):
    """A student signed up for an offer: once, whatever happened in the browser."""

    offer = models.ForeignKey(ActivityOffer, on_delete=models.PROTECT, related_name="signups")
    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="signups")
    fee = models.OneToOneField(Fee, on_delete=models.PROTECT, related_name="signup")
    signed_up_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # However often the button is pressed, in however many tabs: one sign-up, one fee.
            models.UniqueConstraint(fields=["offer", "student"], name="one_signup_per_student")
        ]

    def __str__(self) -> str:
        return f"{self.student} for {self.offer}"
