"""Writes of the parent portal: sharing a document, downloading one (authorized and logged),
signing a child up for an activity (which charges its fee once, through the ledger)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.fees.models import LedgerEntry
from apps.fees.once import AlreadyRecorded, post_once
from apps.fees.services import Origin, fee_create
from apps.students.models import Guardian, Student
from apps.students.services import activity_join

from .models import ActivityOffer, ActivitySignup, DocumentDownload, StudentDocument

#: The `external_source` of the charge a portal sign-up posts; its `external_id` is the
#: sign-up form's one-time token (apps/fees/once.py), so a resent form charges nothing more.
SIGNUP_SOURCE = "portal-signup"

#: Staff who may read (and so download) the documents shared with guardians.
STAFF_DOCUMENT_PERMISSION = "portal.view_studentdocument"


# --- documents ------------------------------------------------------------------------------


def document_upload(
    *, student: Student, title: str, file: UploadedFile, user: Any, note: str = ""
) -> StudentDocument:
    """Share a document with one student's guardians."""
    if not title.strip():
        raise ValidationError({"title": "Give the document a title parents will recognise."})
    limit = settings.FEESYNC_DOCUMENT_MAX_BYTES
    if file.size is not None and file.size > limit:
        raise ValidationError(
            {
                "file": f"The file is {file.size / 1_048_576:.1f} MB; "
                f"the most is {limit / 1_048_576:.0f} MB."
            }
        )
    return StudentDocument.objects.create(
        student=student, title=title.strip(), note=note.strip(), file=file, uploaded_by=user
    )


def document_access(*, user: Any, document: StudentDocument) -> str | None:
    """As whom `user` may download `document`: one of the student's guardians, or district
    staff with the documents permission; None for anyone else (other parents included)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_staff:
        return DocumentDownload.As.STAFF if user.has_perm(STAFF_DOCUMENT_PERMISSION) else None
    is_guardian = Guardian.objects.filter(user=user, students=document.student_id).exists()
    return DocumentDownload.As.GUARDIAN if is_guardian else None


def document_download(
    *, user: Any, document: StudentDocument, ip_address: str | None = None
) -> DocumentDownload:
    """Authorize one download and log it; the caller then streams the file. Raises
    PermissionDenied for anyone but the student's guardians and district staff."""
    role = document_access(user=user, document=document)
    if role is None:
        raise PermissionDenied("Only the student's guardians and district staff may open it.")
    return DocumentDownload.objects.create(
        document=document,
        document_title=document.title,
        student_id=document.student_id,
        user=user,
        downloaded_as=role,
        ip_address=ip_address or None,
    )


# --- activity sign-up ---------------------------------------------------------------------


class SignupRefused(Exception):
    """The sign-up is not possible; the message says why, in a parent's words."""


@dataclass(frozen=True)
class SignupResult:
    signup: ActivitySignup
    created: bool  # False: the child was already signed up (nothing more was charged)


def activity_sign_up(
    *, offer: ActivityOffer, student: Student, user: Any, token: uuid.UUID | str
) -> SignupResult:
    """Sign `student` up for `offer`: join the activity and charge its fee through the
    ledger (fee_create: the outbox sends it to the vendor that collects its category).

    Charged once however often it is asked: the student's row is locked while the sign-up
    is checked and made, the sign-up is unique per (offer, student), and the charge carries
    the form's one-time token as its outside key (a resent form finds its first charge)."""
    today = timezone.localdate()
    if not offer.is_open(today):
        if offer.opens_on > today:
            raise SignupRefused(f"Sign-up for {offer.title} opens on {offer.opens_on:%B %-d}.")
        raise SignupRefused(f"Sign-up for {offer.title} closed on {offer.closes_on:%B %-d}.")
    if not offer.admits(student):
        raise SignupRefused(f"{offer.title} is for students of {offer.activity.school}.")

    def perform() -> SignupResult:
        existing = ActivitySignup.objects.filter(offer=offer, student=student).first()
        if existing is not None:
            return SignupResult(existing, created=False)
        fee = fee_create(
            student=student,
            category=offer.category,
            merchant_account=offer.merchant_account,
            description=offer.fee_description,
            amount=offer.fee_amount,
            fee_date=today,
            due_date=today + dt.timedelta(days=offer.due_days),
            origin=Origin(
                user=user,
                source=LedgerEntry.Source.SYSTEM,
                external_source=SIGNUP_SOURCE,
                external_id=str(token),
            ),
        )
        signup = ActivitySignup.objects.create(
            offer=offer, student=student, fee=fee, signed_up_by=user
        )
        # A member like any other: fees the district assigned to the activity's lists follow.
        activity_join(
            student=student,
            activity=offer.activity,
            origin=Origin(user=user, source=LedgerEntry.Source.SYSTEM),
        )
        return SignupResult(signup, created=True)

    try:
        return post_once(
            token=token,
            lock=Student.objects.filter(pk=student.pk),
            perform=perform,
            source=SIGNUP_SOURCE,
        )
    except AlreadyRecorded as repeat:
        fee_id = repeat.entry.fee_id
        first = ActivitySignup.objects.filter(fee_id=fee_id).first() if fee_id else None
        if first is None or first.student_id != student.pk or first.offer_id != offer.pk:
            # The token was spent on another sign-up: this form is out of date.
            raise SignupRefused("This page is out of date: open it again and sign up.") from None
        return SignupResult(first, created=False)
    except IntegrityError:
        # Another request signed the child up at the same moment (the unique constraint).
        with transaction.atomic():
            existing = ActivitySignup.objects.filter(offer=offer, student=student).first()
        if existing is None:
            raise
        return SignupResult(existing, created=False)
