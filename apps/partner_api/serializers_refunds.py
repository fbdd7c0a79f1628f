"""Request and response bodies of the refund and miscellaneous-receipt operations (part 2),
property by property in the contract's PascalCase. Serializers validate the shape; the
services in apps.accounting.services decide."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounting.models import PaymentType, Refund

from .fields import ContractDateField, MoneyInputField, MoneyOutField
from .serializers import STUDENT_ID_HELP, _Strict

PAYMENT_TYPE_HELP = "C cash, E EFT, H check, I ACH, R credit card, O other."


class ErrorOut(serializers.Serializer):
    property = serializers.CharField(help_text="The property that is wrong (or “(body)”).")
    detail = serializers.CharField(help_text="What is wrong with it.")


class RefundOut(serializers.Serializer):
    RefundId = serializers.IntegerField(help_text="The refund's id.")
    StudentId = serializers.CharField(help_text=STUDENT_ID_HELP)
    Amount = MoneyOutField(help_text="What is owed to the student, dollars to the cent.")
    DueDate = serializers.CharField(help_text="When it is due (00:00:00).")
    Status = serializers.ChoiceField(
        choices=Refund.Status.values,
        help_text="N not processed, S selected for processing, P processed (paid), V voided.",
    )
    FundSourceId = serializers.CharField(
        allow_null=True, help_text="The fund source's code it is refunded from, if any."
    )
    StudentAwardId = serializers.IntegerField(
        allow_null=True, help_text="The student award it is tied to, if any."
    )
    StudentAccountTransactionId = serializers.IntegerField(
        allow_null=True, help_text="Its (first) refund entry on the ledger card once paid."
    )


# --- PATCH scheduled-refunds-status ---------------------------------------------------------


class RefundStatusIn(_Strict):
    RefundIds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**62),
        allow_empty=False,
        max_length=5000,
        help_text="The scheduled refunds to change, all or none.",
    )
    Status = serializers.ChoiceField(
        choices=[Refund.Status.SELECTED, Refund.Status.NOT_PROCESSED],
        help_text="S: select them for processing (each must be N). N: let them go again "
        "(each must be S, selected by you). Nothing else.",
    )


class RefundStatusOut(serializers.Serializer):
    Refunds = RefundOut(many=True, help_text="The refunds as they are now.")


# --- POST ledger-scheduled-refund-transactions ------------------------------------------------


class ScheduledRefundIn(_Strict):
    RefundId = serializers.IntegerField(
        min_value=1, max_value=2**62, help_text="A refund you selected (status S)."
    )
    TransactionDate = ContractDateField(
        required=False, help_text="The day you paid it (its business date); today if absent."
    )
    PaymentType = serializers.ChoiceField(
        choices=PaymentType.choices,
        required=False,
        default=PaymentType.CHECK,
        help_text=f"How it was paid out: {PAYMENT_TYPE_HELP} H if absent.",
    )
    BankAccountId = serializers.IntegerField(
        min_value=1, max_value=2**62, required=False, help_text="The bank account it was paid from."
    )
    CheckNumber = serializers.CharField(
        max_length=30, required=False, allow_blank=True, help_text="The refund check's number."
    )
    Description = serializers.CharField(
        max_length=300, required=False, allow_blank=True, help_text="Shown on the ledger card."
    )


class ScheduledRefundsIn:
    """The request body: a JSON array of `ScheduledRefundIn`. Only its shape is checked here;
    each element is checked on its own by the view, so one bad element fails alone (its
    result says why) and the others are posted."""

    MAX = 5000

    def __init__(self, data: Any) -> None:
        self.initial_data = data
        self.validated_data: list[Any] = []

    def is_valid(self, raise_exception: bool = False) -> bool:
        data = self.initial_data
        if not isinstance(data, list) or not data:
            raise serializers.ValidationError(
                {"(body)": ["The body must be a non-empty JSON array of refunds."]}
            )
        if len(data) > self.MAX:
            raise serializers.ValidationError(
                {"(body)": [f"At most {self.MAX} refunds per request; this has {len(data)}."]}
            )
        self.validated_data = data
        return True


class ScheduledRefundResultOut(serializers.Serializer):
    RefundId = serializers.IntegerField(
        allow_null=True, help_text="As sent (null when it was not a number)."
    )
    IsSuccessful = serializers.BooleanField(help_text="Posted as paid (or posted before).")
    Status = serializers.CharField(
        allow_null=True, help_text="The refund's status now (P once paid)."
    )
    TransactionAmount = MoneyOutField(allow_null=True, help_text="What was paid out.")
    StudentAccountTransactionIds = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The refund entries on the ledger card (one per payment the credit came from).",
    )
    IsReplay = serializers.BooleanField(help_text="True when it was posted as paid before.")
    Errors = ErrorOut(many=True, help_text="Why it failed (empty on success).")


class ScheduledRefundsOut(serializers.Serializer):
    Results = ScheduledRefundResultOut(many=True, help_text="One per element, in order.")
    SucceededCount = serializers.IntegerField(help_text="Elements posted (or posted before).")
    FailedCount = serializers.IntegerField(help_text="Elements that failed.")


# --- POST ledger-refund-transactions ----------------------------------------------------------


class RefundIn(_Strict):
    StudentId = serializers.CharField(max_length=40, help_text=STUDENT_ID_HELP)
    TransactionAmount = MoneyInputField(help_text="The refund, out of the student's credit.")
    TransactionDate = ContractDateField(help_text="The day it was paid (its business date).")
    PaymentType = serializers.ChoiceField(
        choices=PaymentType.choices, help_text=f"How it was paid out: {PAYMENT_TYPE_HELP}"
    )
    Description = serializers.CharField(max_length=300, help_text="Shown on the ledger card.")
    VendorTransactionId = serializers.CharField(
        max_length=100,
        help_text="Your own id of this refund: recorded once per API user, forever; a repeat "
        "answers with the first posting (IsReplay true).",
    )
    BankAccountId = serializers.IntegerField(
        min_value=1, max_value=2**62, required=False, help_text="The bank account it was paid from."
    )
    CheckNumber = serializers.CharField(
        max_length=30, required=False, allow_blank=True, help_text="The refund check's number."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["Description"].strip():
            raise serializers.ValidationError({"Description": "Description is required."})
        if not attrs["VendorTransactionId"].strip():
            raise serializers.ValidationError(
                {"VendorTransactionId": "VendorTransactionId is required."}
            )
        return attrs


class RefundTransactionOut(serializers.Serializer):
    StudentAccountTransactionId = serializers.IntegerField(help_text="The (first) refund entry.")
    StudentAccountTransactionIds = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Every refund entry it posted (one per payment the credit came from; on a "
        "replay, the first).",
    )
    StudentId = serializers.CharField(help_text=STUDENT_ID_HELP)
    TransactionAmount = MoneyOutField(help_text="As posted.")
    TransactionDate = serializers.CharField(help_text="Its business date (00:00:00).")
    PaymentType = serializers.CharField(help_text="As posted.")
    Description = serializers.CharField(help_text="As posted.")
    VendorTransactionId = serializers.CharField(help_text="As posted.")
    CreditAmount = MoneyOutField(help_text="The student's credit on account after it.")
    IsReplay = serializers.BooleanField(help_text="True when posted before: that posting.")


# --- POST / PATCH misc-cash-receipts ------------------------------------------------------------


class _ReceiptFields(_Strict):
    BillingTransactionCodeId = serializers.CharField(
        max_length=20, help_text="The billing code: one whose usage is M or A."
    )
    TransactionAmount = MoneyInputField(help_text="The receipt, dollars to the cent.")
    TransactionDate = ContractDateField(help_text="Its business date (the deposit's day).")
    PaymentType = serializers.ChoiceField(
        choices=PaymentType.choices, help_text=f"How it was paid: {PAYMENT_TYPE_HELP}"
    )
    Description = serializers.CharField(
        max_length=300, required=False, allow_blank=True, help_text="What it is for."
    )
    PayerName = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="Who paid it."
    )
    BankAccountId = serializers.IntegerField(
        min_value=1,
        max_value=2**62,
        required=False,
        allow_null=True,
        help_text="The bank account it is deposited in.",
    )
    CashDrawerSessionId = serializers.IntegerField(
        min_value=1,
        max_value=2**62,
        required=False,
        allow_null=True,
        help_text="The open cash drawer session it is in.",
    )


class ReceiptCreateIn(_ReceiptFields):
    VendorTransactionId = serializers.CharField(
        max_length=100,
        help_text="Your own id of this receipt: recorded once per API user; a repeat answers "
        "with the first (IsReplay true).",
    )


class ReceiptUpdateIn(_ReceiptFields):
    MiscCashReceiptId = serializers.IntegerField(
        min_value=1, max_value=2**62, help_text="The receipt to change."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, f in self.fields.items():
            if name != "MiscCashReceiptId":
                f.required = False


class ReceiptOut(serializers.Serializer):
    MiscCashReceiptId = serializers.IntegerField(help_text="The receipt's id.")
    BillingTransactionCodeId = serializers.CharField(help_text="Its billing code.")
    TransactionAmount = MoneyOutField(help_text="As recorded.")
    TransactionDate = serializers.CharField(help_text="Its business date (00:00:00).")
    PaymentType = serializers.CharField(help_text=PAYMENT_TYPE_HELP)
    Description = serializers.CharField(help_text="As recorded.")
    PayerName = serializers.CharField(help_text="As recorded.")
    BankAccountId = serializers.IntegerField(allow_null=True, help_text="As recorded.")
    CashDrawerSessionId = serializers.IntegerField(allow_null=True, help_text="As recorded.")
    VendorTransactionId = serializers.CharField(help_text="As posted.")
    IsReleased = serializers.BooleanField(
        help_text="Released to the general ledger: it can no longer be changed."
    )
    IsReplay = serializers.BooleanField(help_text="True when posted before: that receipt.")
