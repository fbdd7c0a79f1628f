"""A staff posting happens once.

A double click, a resubmitted form or a browser's "post again?" would otherwise record the
same payment twice. Every form on the staff site that posts money carries a one-time token
(a hidden field, made when the form is shown), and the entry it posts keeps it as its
outside key, `(external_source="staff-form", external_id=<token>)`: the ledger already
records one entry per such key (the unique constraint `external_transaction_once`, checked
again by `ledger_check`), so nothing new is needed in the ledger itself.

This is sound next to the vendors' keys because those are always `integration:<pk>` (or
another sender's own prefix) with a source other than "staff"; nothing that looks for vendor
payments matches "staff-form", and the sync engine only skips echoing a change back to the
integration whose `external_source` it carries.

`post_once` turns a repeat into the first result: the page says when the entry was recorded
and by whom instead of recording it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django import forms
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.formats import date_format

from .models import CreditApplication, LedgerEntry
from .services import Origin

#: The `external_source` of every entry posted from a staff form.
STAFF_FORM_SOURCE = "staff-form"

T = TypeVar("T")

#: What a clerk calls the entry a form posted, for "This … was already recorded".
WHAT_WAS_RECORDED = {
    LedgerEntry.Kind.PAYMENT: "payment",
    LedgerEntry.Kind.WAIVER: "waiver",
    LedgerEntry.Kind.REFUND: "refund",
    LedgerEntry.Kind.REVERSAL: "reversal",
    LedgerEntry.Kind.VOID: "void",
    LedgerEntry.Kind.CHARGE: "fee",
    LedgerEntry.Kind.DEBIT_ADJUSTMENT: "amount change",
    LedgerEntry.Kind.CREDIT_ADJUSTMENT: "amount change",
}


PAGE_OUT_OF_DATE = "This page is out of date: open it again and re-enter what you typed."


def token_field() -> forms.UUIDField:
    """The hidden one-time token of a form that posts money."""
    return forms.UUIDField(
        widget=forms.HiddenInput,
        label="One-time form token",
        help_text="Makes sure this form is recorded once however often it is sent.",
        error_messages={"required": PAGE_OUT_OF_DATE, "invalid": PAGE_OUT_OF_DATE},
    )


def add_token_initial(form: forms.BaseForm) -> None:
    """A fresh token each time an unbound form is shown; a bound one keeps the token it was
    sent with, so a form shown again with an error is still the same single posting."""
    if not form.is_bound:
        form.initial["token"] = uuid.uuid4()


class OneTimeTokenForm(forms.Form):
    """A form that posts money: carries the hidden one-time token of `post_once`."""

    token = token_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_token_initial(self)


def staff_origin(user: AbstractBaseUser | AnonymousUser, token: uuid.UUID | str) -> Origin:
    """Who posts from a staff form, keyed by that form's one-time token."""
    return Origin(
        user=user if isinstance(user, AbstractBaseUser) else None,
        external_source=STAFF_FORM_SOURCE,
        external_id=str(token),
    )


def first_posting(token: uuid.UUID | str, source: str = STAFF_FORM_SOURCE) -> LedgerEntry | None:
    """The entry a form with this token already recorded, if any (`source`: the forms'
    `external_source`; the parent portal's sign-up form has its own)."""
    return (
        LedgerEntry.objects.select_related("created_by")
        .filter(external_source=source, external_id=str(token))
        .first()
    )


def already_recorded_message(entry: LedgerEntry) -> str:
    """What a repeat shows: "This payment was already recorded at 10:42 by clerk; …"."""
    what = WHAT_WAS_RECORDED.get(LedgerEntry.Kind(entry.kind), entry.get_kind_display().lower())
    return _recorded_message(what, entry.created_at, entry.created_by)


def already_applied_message(application: CreditApplication) -> str:
    """What a repeat of "Apply credit to a fee" shows (it posts allocations, no entry)."""
    return _recorded_message(
        f"credit of ${application.amount} to fee {application.fee.reference}",
        application.created_at,
        application.created_by,
    )


def _recorded_message(what: str, created_at: datetime, user: Any) -> str:
    local = timezone.localtime(created_at)
    at = date_format(local, "H:i")
    if local.date() != timezone.localdate():
        at = f"{at} on {date_format(local, 'DATE_FORMAT')}"
    who = ""
    if user is not None:
        name = user.get_full_name() if hasattr(user, "get_full_name") else ""
        who = f" by {name or user.get_username()}"
    return f"This {what} was already recorded at {at}{who}; nothing was recorded twice."


class AlreadyRecorded(Exception):
    """The form with this token was recorded before; `entry` is what it recorded."""

    def __init__(self, entry: LedgerEntry) -> None:
        super().__init__(already_recorded_message(entry))
        self.entry = entry


def post_once(
    *,
    token: uuid.UUID | str,
    lock: QuerySet[Any] | None,
    perform: Callable[[], T],
    source: str = STAFF_FORM_SOURCE,
) -> T:
    """Run `perform` (which posts with `staff_origin(..., token)`) and return what it
    returns, unless that token was recorded already: then raise `AlreadyRecorded`.

    `lock` is the row the posting is about (the fee; the student when a fee is charged):
    it is locked first, so that of two identical submissions at the same moment the second
    waits for the first to commit and then finds its entry. The unique key catches what
    has no row to lock; either way nothing is recorded twice."""
    try:
        with transaction.atomic():
            if lock is not None:
                list(lock.select_for_update())
            first = first_posting(token, source)
            if first is None:
                return perform()
    except IntegrityError:
        # The same token posted by a concurrent request that had no row to wait on.
        first = first_posting(token, source)
        if first is None:
            raise
    raise AlreadyRecorded(first)
