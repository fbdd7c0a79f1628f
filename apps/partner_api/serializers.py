"""The Anthology contract's request and response bodies, property by property (PascalCase,
as the contract names them). Serializers validate the shape; the services decide."""

from __future__ import annotations

import copy
from typing import Any

from rest_framework import serializers

from .fields import ContractDateField, MoneyInputField, MoneyOutField

PAYMENT_TYPES = {
    "Cash": "cash",
    "Check": "check",
    "CreditCard": "card",
    "DebitCard": "card",
    "ACH": "online",
    "EFT": "online",
    "Online": "online",
}

#: Part 1's payment types as the payment-type letters of the daily close's bookings
#: (Anthology's C cash, E EFT, H check, I ACH, R credit card, O other).
PAYMENT_TYPE_LETTERS = {
    "Cash": "C",
    "Check": "H",
    "CreditCard": "R",
    "DebitCard": "R",
    "ACH": "I",
    "EFT": "E",
    "Online": "O",
}

STUDENT_ID_HELP = "The student's id (FeeSync's student number)."


class _Strict(serializers.Serializer):
    """Refuses properties the contract does not name, so a misspelt one is not ignored."""

    def get_fields(self) -> dict[str, Any]:
        # DRF deep-copies every declared field for each request (a tenth of a payment's
        # CPU). A plain field keeps no state of its own beyond what `bind()` sets on the
        # copy, so a shallow copy does; nested serializers are still copied deep.
        return {
            name: copy.deepcopy(field)
            if isinstance(field, serializers.BaseSerializer)
            else copy.copy(field)
            for name, field in self._declared_fields.items()
        }

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["This property is not part of the contract."] for name in unknown}
                )
        return super().to_internal_value(data)


class ScheduledPaymentOut(serializers.Serializer):
    ScheduledDisbursementId = serializers.IntegerField(help_text="The installment's id.")
    Amount = MoneyOutField(help_text="Its amount, dollars to the cent.")
    ExpectedDate = serializers.CharField(help_text="When it is expected (00:00:00).")
    Status = serializers.ChoiceField(
        choices=["S", "P", "C"], help_text="S scheduled, P paid, C cancelled."
    )
    StudentAccountTransactionId = serializers.IntegerField(
        allow_null=True, help_text="The payment that paid it (status P), else null."
    )


class PaymentIn(_Strict):
    StudentId = serializers.CharField(max_length=40, help_text=STUDENT_ID_HELP)
    TransactionAmount = MoneyInputField(help_text="The payment, dollars to the cent.")
    TransactionDate = ContractDateField(help_text="The day the payment was taken.")
    PaymentType = serializers.ChoiceField(choices=list(PAYMENT_TYPES), help_text="How it was paid.")
    Description = serializers.CharField(max_length=300, help_text="Shown on the ledger card.")
    VendorTransactionId = serializers.CharField(
        max_length=100,
        help_text="Your own id of this payment: recorded once per API user, forever; a "
        "repeat answers with the first posting (IsReplay true).",
    )
    CheckNumber = serializers.CharField(
        max_length=30, required=False, allow_blank=True, help_text="Required for PaymentType Check."
    )
    ScheduledDisbursementId = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**62,
        help_text="The installment (scheduled payment) this pays; the schedule is auto-adjusted.",
    )
    UseNextScheduledPayment = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Pay the scheduled installment with the earliest expected date (of "
        "PaymentPlanId, or of any of the student's plans).",
    )
    PaymentPlanId = serializers.IntegerField(
        required=False, min_value=1, max_value=2**62, help_text="With UseNextScheduledPayment."
    )
    CashDrawerId = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**31 - 1,
        help_text="The cash drawer (see the admin's Business office › Cash drawers); required "
        "when the student's school takes payments at cash drawers.",
    )
    CashDrawerSessionId = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**62,
        help_text="The open cash drawer session at CashDrawerId the payment goes into. "
        "Without it: the drawer's open session tied to this API user, else the one whose "
        "cashier is CashierUserId. A closed or reconciled session takes no payments.",
    )
    CashierUserId = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**62,
        help_text="The cashier (a staff user id): the cashier of an open session at "
        "CashDrawerId; required with CashDrawerId when the API user has no open session there.",
    )
    TermId = serializers.CharField(
        max_length=40, required=False, allow_blank=True, help_text="The term, if any."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        if attrs.get("UseNextScheduledPayment") and attrs.get("ScheduledDisbursementId"):
            errors["UseNextScheduledPayment"] = (
                "Give ScheduledDisbursementId or UseNextScheduledPayment, not both."
            )
        if attrs.get("PaymentPlanId") and not attrs.get("UseNextScheduledPayment"):
            errors["PaymentPlanId"] = "PaymentPlanId is used only with UseNextScheduledPayment."
        if attrs["PaymentType"] == "Check" and not (attrs.get("CheckNumber") or "").strip():
            errors["CheckNumber"] = "A Check payment needs its CheckNumber."
        if not attrs["Description"].strip():
            errors["Description"] = "Description is required."
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class PaymentOut(serializers.Serializer):
    StudentAccountTransactionId = serializers.IntegerField(help_text="The payment's ledger id.")
    StudentId = serializers.CharField(help_text=STUDENT_ID_HELP)
    TransactionAmount = MoneyOutField(help_text="The payment.")
    AppliedAmount = MoneyOutField(help_text="What of it is applied to charges now.")
    UnappliedAmount = MoneyOutField(help_text="What of it is the student's credit now.")
    TransactionDate = serializers.CharField(help_text="As posted (00:00:00).")
    PaymentType = serializers.CharField(help_text="As posted.")
    Description = serializers.CharField(help_text="As posted.")
    VendorTransactionId = serializers.CharField(help_text="As posted.")
    PaymentPlanId = serializers.IntegerField(
        allow_null=True, help_text="The plan whose installments it paid, if any."
    )
    ScheduledPayments = ScheduledPaymentOut(
        many=True, help_text="The installments this payment paid (whole or in part)."
    )
    IsReplay = serializers.BooleanField(
        help_text="True when this VendorTransactionId was posted before: this is that posting."
    )


class InstallmentIn(_Strict):
    Amount = MoneyInputField(help_text="The installment, dollars to the cent.")
    ExpectedDate = ContractDateField(help_text="When it is expected.")


class _PlanTerms(_Strict):
    Description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="What the plan is for."
    )
    IsInterestBearing = serializers.BooleanField(
        required=False, help_text="Whether the plan bears interest (stored as given)."
    )
    InterestRate = serializers.DecimalField(
        max_digits=7,
        decimal_places=4,
        min_value=0,
        max_value=100,
        required=False,
        coerce_to_string=True,
        help_text="Annual interest rate in percent (stored as given).",
    )
    InterestStartDate = ContractDateField(required=False, help_text="When interest starts.")
    LateFeeAmount = MoneyInputField(
        required=False, allow_zero=True, help_text="Late fee per missed installment (stored)."
    )

    TERMS = ("IsInterestBearing", "InterestRate", "InterestStartDate", "LateFeeAmount")

    def terms(self, attrs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.TERMS:
            if name in attrs:
                value = attrs[name]
                out[name] = value if isinstance(value, bool) else str(value)
        return out


class PlanCreateIn(_PlanTerms):
    StudentId = serializers.CharField(max_length=40, help_text=STUDENT_ID_HELP)
    ScheduledPayments = InstallmentIn(
        many=True,
        allow_empty=False,
        max_length=240,  # type: ignore[call-arg]  # ListSerializer's, unknown to the stubs
        help_text="The installments, any order.",
    )


class PlanUpdateIn(_PlanTerms):
    PaymentPlanId = serializers.IntegerField(
        min_value=1, max_value=2**62, help_text="The plan to change."
    )
    IsScheduledPaymentsRemoved = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Remove every scheduled (S) or cancelled (C) installment and replace them "
        "with ScheduledPayments; paid ones are never touched. False: ScheduledPayments are "
        "added.",
    )
    ScheduledPayments = InstallmentIn(
        many=True,
        required=False,
        max_length=240,  # type: ignore[call-arg]  # ListSerializer's, unknown to the stubs
        help_text="Installments to add.",
    )


class PlanOut(serializers.Serializer):
    PaymentPlanId = serializers.IntegerField(help_text="The plan's id.")
    StudentId = serializers.CharField(help_text=STUDENT_ID_HELP)
    Description = serializers.CharField(help_text="What the plan is for.")
    TotalAmount = MoneyOutField(help_text="Paid plus scheduled installments.")
    PaidAmount = MoneyOutField(help_text="Installments paid.")
    ScheduledAmount = MoneyOutField(help_text="Installments still scheduled.")
    Terms = serializers.DictField(help_text="The interest-bearing properties, as sent.")
    ScheduledPayments = ScheduledPaymentOut(many=True, help_text="The schedule, by date.")


CHARGE_TYPES = {
    "Charge": "charge",
    "DebitAdjustment": "debit_adjustment",
    "CreditAdjustment": "credit_adjustment",
}


class ChargeIn(_Strict):
    StudentId = serializers.CharField(max_length=40, help_text=STUDENT_ID_HELP)
    BillingTransactionCodeId = serializers.CharField(
        max_length=20,
        help_text="The billing code: a FeeSync fee category code this integration may post.",
    )
    Type = serializers.ChoiceField(
        choices=list(CHARGE_TYPES),
        help_text="Charge (a new fee), DebitAdjustment (raises a charge) or CreditAdjustment "
        "(lowers one).",
    )
    TransactionAmount = MoneyInputField(help_text="Dollars to the cent.")
    TransactionDate = ContractDateField(help_text="The charge's date (the fee date).")
    Description = serializers.CharField(max_length=200, help_text="Shown on the ledger card.")
    VendorTransactionId = serializers.CharField(
        max_length=100, help_text="Your own id of this transaction: recorded once, forever."
    )
    DueDate = ContractDateField(required=False, help_text="When a charge is due.")
    TermId = serializers.CharField(
        max_length=40,
        required=False,
        allow_blank=True,
        help_text="The term; required when the district requires term codes.",
    )
    AdjustedTransactionId = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**62,
        help_text="For an adjustment: the charge it adjusts. Without it, a credit adjustment "
        "lowers the student's oldest-due open charge of the billing code that owes enough, "
        "a debit adjustment raises the newest charge of the billing code.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["Description"].strip():
            raise serializers.ValidationError({"Description": "Description is required."})
        return attrs


class ChargeOut(serializers.Serializer):
    StudentAccountTransactionId = serializers.IntegerField(help_text="The entry's ledger id.")
    StudentId = serializers.CharField(help_text=STUDENT_ID_HELP)
    Type = serializers.CharField(help_text="As posted.")
    TransactionAmount = MoneyOutField(help_text="As posted.")
    ChargeTransactionId = serializers.IntegerField(help_text="The charge (fee) it is on.")
    FeeReference = serializers.CharField(help_text="FeeSync's reference of that fee.")
    ChargeAmount = MoneyOutField(help_text="What that fee charges now.")
    ChargeBalance = MoneyOutField(help_text="What is still owed on it.")
    VendorTransactionId = serializers.CharField(help_text="As posted.")
    IsReplay = serializers.BooleanField(help_text="True when posted before: that posting.")


class ApplicationIn(_Strict):
    StudentAccountTransactionId = serializers.IntegerField(
        min_value=1, max_value=2**62, help_text="A charge or debit adjustment to apply to."
    )
    Amount = MoneyInputField(help_text="How much to apply to it.")


class ApplyIn(_Strict):
    StudentId = serializers.CharField(max_length=40, help_text=STUDENT_ID_HELP)
    StudentAccountTransactionId = serializers.IntegerField(
        min_value=1,
        max_value=2**62,
        help_text="The payment or credit adjustment whose unapplied money is applied.",
    )
    Applications = ApplicationIn(
        many=True,
        allow_empty=False,
        max_length=100,  # type: ignore[call-arg]  # ListSerializer's, unknown to the stubs
        help_text="Where, and how much.",
    )


class ApplyOut(serializers.Serializer):
    StudentAccountTransactionId = serializers.IntegerField(help_text="The payment.")
    UnappliedAmount = MoneyOutField(help_text="What of it is still unapplied.")
    Applications = serializers.ListField(
        child=serializers.DictField(),
        help_text="Each charge with the amount applied and its balance.",
    )
