"""The forms a fees clerk fills in on the staff site.

They parse and check what was typed (an amount in dollars and cents, a check number for a
check); the ledger services check everything again against the ledger as it is at that
moment, so a form that passes here can still be refused with the service's reason.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AdminDateWidget, AdminRadioSelect, AutocompleteSelect
from django.db.models import DecimalField, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.formats import date_format

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.students.models import Student, StudentList

from .models import MONEY, ZERO, Allocation, Fee, FeeAssignment, LedgerEntry
from .money import MoneyField, MoneyInput
from .once import OneTimeTokenForm, add_token_initial, token_field
from .selectors import check_payment_recorded

__all__ = ["MoneyField", "MoneyInput", "dollars"]  # MoneyField lives in money.py


def dollars(amount: Decimal) -> str:
    """$1,234.50: money as a clerk reads it."""
    return f"${amount:,.2f}"


def _date_widget() -> AdminDateWidget:
    return AdminDateWidget()


def _check_dates(form: forms.BaseForm, fee_date: date | None, due_date: date | None) -> None:
    if fee_date and due_date and due_date < fee_date:
        form.add_error("due_date", "The due date cannot be before the fee date.")


def _active_categories() -> QuerySet[FeeCategory]:
    return FeeCategory.objects.filter(active=True).order_by("code")


def _active_accounts() -> QuerySet[MerchantAccount]:
    return MerchantAccount.objects.filter(active=True).order_by("name")


# --- one fee ----------------------------------------------------------------------------------


class ChargeForm(forms.Form):
    """What every charge needs: category, merchant account, description, amount, dates."""

    category = forms.ModelChoiceField(
        queryset=_active_categories(),
        help_text="What kind of fee this is. Only active categories are listed.",
    )
    merchant_account = forms.ModelChoiceField(
        queryset=_active_accounts(),
        label="Merchant account",
        help_text="The bank account the payment vendor deposits this money into.",
    )
    description = forms.CharField(
        max_length=200,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="What parents see, e.g. “Grade 5 field trip to the science museum”.",
    )
    amount = MoneyField(help_text="In dollars and cents, e.g. 25.00.")
    fee_date = forms.DateField(
        label="Fee date", widget=_date_widget(), help_text="The date the fee is charged."
    )
    due_date = forms.DateField(
        label="Due date",
        required=False,
        widget=_date_widget(),
        help_text="Optional. Not before the fee date.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Querysets are evaluated per request so new categories show without a restart.
        cast(
            "forms.ModelChoiceField[FeeCategory]", self.fields["category"]
        ).queryset = _active_categories()
        cast(
            "forms.ModelChoiceField[MerchantAccount]", self.fields["merchant_account"]
        ).queryset = _active_accounts()
        if not self.is_bound and "fee_date" not in self.initial:
            self.initial["fee_date"] = timezone.localdate()

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        _check_dates(self, cleaned.get("fee_date"), cleaned.get("due_date"))
        return cleaned


class FeeAddForm(OneTimeTokenForm, ChargeForm):
    """Charge one student a fee (calls `fee_create`); charged once however often it is
    sent (the one-time token)."""

    student = forms.ModelChoiceField(
        queryset=Student.objects.all(),
        widget=AutocompleteSelect(Fee._meta.get_field("student"), admin.site),
        help_text="Type a name or student number.",
    )
    field_order = ["student"]


class FeeChangeForm(forms.ModelForm[Fee]):
    """The editable part of a fee's page; saved through `fee_change`, never `save()`."""

    reason = forms.CharField(
        required=False,
        max_length=300,
        label="Reason for an amount change",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Optional. Recorded on the adjustment entry when the amount changes, "
        "e.g. “Bus cost went up”.",
    )
    # An amount change posts an adjustment: the same one-time token as every money form.
    token = token_field()

    class Meta:
        model = Fee
        fields = ["description", "due_date", "amount"]
        field_classes = {"amount": MoneyField}
        help_texts = {
            "description": "What parents see. Changing it is sent to the payment vendor.",
            "due_date": "Not before the fee date.",
            "amount": "Raising it adds a debit adjustment, lowering it a credit adjustment; "
            "it cannot go below what has already been paid or waived.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_token_initial(self)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        fee: Fee = self.instance
        if "due_date" in self.fields:
            due = cleaned.get("due_date")
            if fee.due_date and due is None and "due_date" not in self.errors:
                self.add_error(
                    "due_date", "A due date cannot be removed once set; enter a new date."
                )
            _check_dates(self, fee.fee_date, due)
        return cleaned

    def _post_clean(self) -> None:
        # The ledger service validates and writes the fee; the model's own validation on a
        # half-updated instance (balance vs. amount) would only get in its way.
        pass


# --- money on a fee ---------------------------------------------------------------------------


class PaymentForm(OneTimeTokenForm):
    """Take a payment at the district office (calls `payment_take`).

    A check number already recorded for the same student is asked about, not refused: one
    check can pay two fees of a family, but a check typed in twice is the commoner slip."""

    METHODS = [
        (LedgerEntry.Method.CASH, "Cash"),
        (LedgerEntry.Method.CHECK, "Check"),
        (LedgerEntry.Method.CARD, "Card"),
    ]

    amount = MoneyField(help_text="In dollars and cents. Not more than is owed.")
    method = forms.ChoiceField(
        choices=METHODS,
        widget=AdminRadioSelect(attrs={"class": "radiolist"}),
        initial=LedgerEntry.Method.CASH,
        help_text="How the money was paid.",
    )
    check_number = forms.CharField(
        required=False,
        max_length=30,
        label="Check number",
        help_text="Required for a check.",
    )
    note = forms.CharField(
        required=False,
        max_length=300,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Optional, e.g. a receipt number.",
    )

    def __init__(self, *args: Any, fee: Fee, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and fee.balance > 0:
            self.initial.setdefault("amount", fee.balance)
        self.fields[
            "amount"
        ].help_text = f"In dollars and cents. {dollars(fee.balance)} is owed on this fee."
        self.earlier_check: LedgerEntry | None = None
        number = str(self.data.get("check_number") or "").strip() if self.is_bound else ""
        if number and self.data.get("method") == LedgerEntry.Method.CHECK:
            self.earlier_check = check_payment_recorded(
                student_id=fee.student_id, check_number=number
            )
        if self.earlier_check is not None:
            # Shown only when it is needed, right under the check number it is about.
            self.fields["record_check_again"] = forms.BooleanField(
                required=False,
                label=f"Yes, record check {number} again",
                help_text="Tick only if this is another payment made with the same check, "
                "e.g. one check for two fees.",
            )
            self.order_fields(["amount", "method", "check_number", "record_check_again"])

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        check_number = (cleaned.get("check_number") or "").strip()
        cleaned["check_number"] = check_number
        if cleaned.get("method") == LedgerEntry.Method.CHECK and not check_number:
            self.add_error("check_number", "Enter the check number for a check payment.")
        earlier = self.earlier_check
        if earlier is not None and not cleaned.get("record_check_again"):
            when = date_format(timezone.localtime(earlier.created_at), "DATE_FORMAT")
            on_fee = f" on fee {earlier.fee.reference}" if earlier.fee is not None else ""
            self.add_error(
                "check_number",
                f"Check {check_number} was already recorded for this student on {when} "
                f"({dollars(earlier.amount)}{on_fee}); tick “Yes, record check "
                f"{check_number} again” and submit again to record it anyway.",
            )
        return cleaned


class WaiveForm(OneTimeTokenForm):
    """Waive all or part of what is owed (calls `fee_waive`)."""

    amount = MoneyField(required=False)
    reason = forms.CharField(
        max_length=300,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Why the district is waiving it, e.g. “Hardship, approved by principal”.",
    )

    def __init__(self, *args: Any, fee: Fee, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[
            "amount"
        ].help_text = f"Leave empty to waive everything still owed ({dollars(fee.balance)})."


class RefundChoiceField(forms.ModelChoiceField[LedgerEntry]):
    def label_from_instance(self, obj: LedgerEntry) -> str:
        when = date_format(timezone.localtime(obj.created_at), "DATE_FORMAT")
        how = obj.get_method_display() or obj.get_source_display()
        check = f" #{obj.check_number}" if obj.check_number else ""
        left: Decimal = obj.amount - obj.given_back  # type: ignore[attr-defined]
        return f"{dollars(obj.amount)} {how.lower()}{check} on {when} ({dollars(left)} refundable)"


def refundable_payments(fee: Fee) -> QuerySet[LedgerEntry]:
    """This fee's payments, each with `given_back`: what of it can no longer be refunded
    here (refunded or reversed on this fee, or credit it left that was applied to another
    fee or refunded from the student's account), as `payment_refund` counts it."""
    used_elsewhere = (
        Allocation.objects.filter(credit=OuterRef("pk"))
        .exclude(debit__fee=fee)
        .order_by()
        .values("credit")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    return (
        LedgerEntry.objects.filter(fee=fee, kind=LedgerEntry.Kind.PAYMENT)
        .annotate(
            given_back=Coalesce(Sum("reversed_by__amount", filter=Q(reversed_by__fee=fee)), ZERO)
            + Coalesce(Subquery(used_elsewhere, output_field=DecimalField(**MONEY)), ZERO)
        )
        .order_by("created_at", "id")
    )


class RefundForm(OneTimeTokenForm):
    """Give back all or part of one payment on this fee (calls `payment_refund`)."""

    payment = RefundChoiceField(
        queryset=LedgerEntry.objects.none(),
        widget=AdminRadioSelect(attrs={"class": "radiolist"}),
        empty_label=None,
        help_text="The payment the money goes back from.",
    )
    amount = MoneyField(
        required=False,
        help_text="Leave empty to refund all that is left of that payment.",
    )
    reason = forms.CharField(
        max_length=300,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Why the money goes back, e.g. “Trip cancelled”.",
    )

    def __init__(self, *args: Any, fee: Fee, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        payments = refundable_payments(fee).filter(amount__gt=F("given_back"))
        cast("RefundChoiceField", self.fields["payment"]).queryset = payments
        if not self.is_bound and len(payments) == 1:
            self.initial["payment"] = payments[0].pk


class VoidForm(OneTimeTokenForm):
    """Cancel a fee charged in error (calls `fee_void`)."""

    reason = forms.CharField(
        max_length=300,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Why the fee should never have been charged, e.g. “Charged to the wrong "
        "student”.",
    )

    def __init__(self, *args: Any, fee: Fee, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)


# --- the student's credit ---------------------------------------------------------------------


class OpenFeeChoiceField(forms.ModelChoiceField[Fee]):
    def label_from_instance(self, obj: Fee) -> str:
        due = f", due {date_format(obj.due_date, 'SHORT_DATE_FORMAT')}" if obj.due_date else ""
        return f"{obj.reference} {obj.description}: {dollars(obj.balance)} owed{due}"


class CreditApplyForm(forms.Form):
    """Apply the student's credit to one of their open fees (calls `credit_apply`)."""

    token = token_field()
    fee = OpenFeeChoiceField(
        queryset=Fee.objects.none(),
        widget=AdminRadioSelect(attrs={"class": "radiolist"}),
        empty_label=None,
        help_text="An open fee of this student, oldest due date first.",
    )
    amount = MoneyField(required=False)

    def __init__(self, *args: Any, student: Student, credit: Decimal, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_token_initial(self)
        fees = Fee.objects.filter(student=student, status=Fee.Status.OPEN, balance__gt=0).order_by(
            F("due_date").asc(nulls_last=True), "fee_date", "pk"
        )
        cast("OpenFeeChoiceField", self.fields["fee"]).queryset = fees
        if not self.is_bound and fees:
            self.initial["fee"] = fees[0].pk
        self.fields[
            "amount"
        ].help_text = (
            f"Leave empty to apply as much of the {dollars(credit)} credit as the fee owes."
        )


class CreditRefundForm(forms.Form):
    """Pay the student's credit back to the family (calls `credit_refund`)."""

    METHODS = [
        (LedgerEntry.Method.CHECK, "Check"),
        (LedgerEntry.Method.CASH, "Cash"),
        (LedgerEntry.Method.CARD, "Card"),
    ]

    token = token_field()
    amount = MoneyField()
    method = forms.ChoiceField(
        choices=METHODS,
        widget=AdminRadioSelect(attrs={"class": "radiolist"}),
        initial=LedgerEntry.Method.CHECK,
        help_text="How the money goes back.",
    )
    check_number = forms.CharField(
        required=False, max_length=30, label="Check number", help_text="Required for a check."
    )
    reason = forms.CharField(
        max_length=300,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Why the money goes back, e.g. “Overpaid at PaySchools”.",
    )

    def __init__(self, *args: Any, student: Student, credit: Decimal, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_token_initial(self)
        if not self.is_bound:
            self.initial.setdefault("amount", credit)
        self.fields["amount"].help_text = f"Not more than the credit, {dollars(credit)}."

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        cleaned["check_number"] = (cleaned.get("check_number") or "").strip()
        if cleaned.get("method") == LedgerEntry.Method.CHECK and not cleaned["check_number"]:
            self.add_error("check_number", "Enter the check number for a refund by check.")
        return cleaned


# --- fees for a list of students --------------------------------------------------------------


class AssignmentAddForm(ChargeForm):
    """A fee for the students of a saved list (calls `assignment_create`)."""

    student_list = forms.ModelChoiceField(
        queryset=StudentList.objects.all(),
        label="Student list",
        widget=AutocompleteSelect(FeeAssignment._meta.get_field("student_list"), admin.site),
        help_text="The saved list whose students are charged. A list of an activity's "
        "members makes the fee follow students who join the activity later.",
    )
    field_order = ["student_list"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["description"].help_text = "What parents see, e.g. “Varsity football 2026”."
        self.fields["amount"].help_text = "Charged to each student, in dollars and cents."
        self.fields["fee_date"].help_text = "The date the fees are charged."


class ListFromAssignmentForm(forms.Form):
    """Name for "Create a student list of all students assigned this fee"."""

    name = forms.CharField(
        max_length=120,
        label="Name of the new list",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Must not be the name of an existing list.",
    )


class ConfirmForm(forms.Form):
    """A confirmation with nothing to fill in (the bulk actions)."""
