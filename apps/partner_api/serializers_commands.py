"""The bodies of Anthology's command endpoints (`/api/commands/...`): PascalCase properties
as the contract names them. A command's request may come wrapped as Anthology's command
APIs send it, `{"payload": {...}}`, or bare; its answer is wrapped `{"payload": {"data":
{...}}}` as Anthology's. Serializers validate the shape; the services decide."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounting.models import PaymentType
from apps.accounting.services.awards import award_year_problem

from .fields import ContractDateField, MoneyInputField, MoneyOutField
from .serializers import STUDENT_ID_HELP, _Strict


def _id(help_text: str, *, required: bool = True) -> serializers.IntegerField:
    """A record's id: a positive whole number."""
    return serializers.IntegerField(
        min_value=1, max_value=2**62, required=required, help_text=help_text
    )


PAYMENT_TYPE_HELP = "C cash, E EFT, H check, I ACH, R credit card, O other."
#: The one PaymentMode this endpoint takes: Anthology's unscheduled payment.
UNSCHEDULED = 2


class PostAccountTransactionPaymentIn(_Strict):
    AcademicYearSequence = serializers.IntegerField(
        min_value=1,
        max_value=32767,
        help_text="The Sequence of the student academic year StudentAcademicYearId (1 for the "
        "student's first year, ...).",
    )
    AwardYear = serializers.CharField(
        max_length=20,  # longer is refused below, saying what an award year looks like
        help_text="The award year of the student award, ####-## (e.g. 2024-25); the award is "
        "created if the student has none for this enrollment period, fund source and year.",
    )
    BankAccountId = _id(
        help_text="The bank account the payment is deposited in: one of a bank of the "
        "enrollment period's school.",
    )
    Description = serializers.CharField(max_length=300, help_text="Shown on the ledger card.")
    FundSourceId = _id(help_text="The fund source the payment comes from (an active one).")
    PaymentMode = serializers.IntegerField(
        help_text="Must be 2: an unscheduled payment (to a fund source, not for an installment)."
    )
    PaymentType = serializers.ChoiceField(
        choices=PaymentType.values, help_text=f"How it was paid: {PAYMENT_TYPE_HELP}"
    )
    StudentAcademicYearId = _id(
        help_text="The student academic year (of that enrollment period) the payment, and a "
        "new student award, are associated with.",
    )
    StudentEnrollmentPeriodId = _id(
        help_text="The student's enrollment period the payment is posted for."
    )
    StudentId = serializers.CharField(max_length=40, help_text=STUDENT_ID_HELP)
    TransactionAmount = MoneyInputField(help_text="The payment, dollars to the cent.")
    TransactionDate = ContractDateField(
        help_text="The payment's date (its business date for the daily close), with the time "
        "00:00:00: any other time is refused."
    )
    IsNewPaymentSuccessful = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Anthology asks for 1 (true): the payment succeeded at your end. False is "
        "refused and nothing is posted. Omitted: true.",
    )
    IgnoreTermRequired = serializers.BooleanField(
        required=False,
        default=False,
        help_text="True (1) posts without TermId even when the district requires term codes.",
    )
    TermId = serializers.CharField(
        max_length=40,
        required=False,
        allow_blank=True,
        help_text="The term; required when the district requires term codes, unless "
        "IgnoreTermRequired.",
    )
    CashDrawerId = _id(
        required=False,
        help_text="The cash drawer; required when the enrollment period's school takes "
        "payments at cash drawers.",
    )
    CashDrawerSessionId = _id(
        required=False,
        help_text="The open (not closed, not reconciled) session at CashDrawerId the payment "
        "goes into; required when the school takes payments at cash drawers.",
    )
    CashierUserId = _id(
        required=False,
        help_text="The cashier (a staff user id); required when the school takes payments at "
        "cash drawers. The session must be tied to this API user or be this cashier's.",
    )
    VendorTransactionId = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Your own id of this payment (FeeSync's addition): recorded once per API "
        "user, forever; a repeat answers with the first posting. Without it, only an "
        "Idempotency-Key guards a retry.",
    )

    def validate_AwardYear(self, value: str) -> str:  # noqa: N802 - the contract's name
        if problem := award_year_problem(value.strip()):
            raise serializers.ValidationError(problem)
        return value.strip()

    def validate_PaymentMode(self, value: int) -> int:  # noqa: N802
        if value != UNSCHEDULED:
            raise serializers.ValidationError(
                f"PaymentMode must be {UNSCHEDULED} (an unscheduled payment to a fund source); "
                "post other payments to /api/student-accounting/ledger-payment-transactions."
            )
        return value

    def validate_Description(self, value: str) -> str:  # noqa: N802
        if not value.strip():
            raise serializers.ValidationError("Description is required.")
        return value.strip()


class PostAccountTransactionPaymentCommand(serializers.Serializer):
    """The request as Anthology's command APIs send it (a bare body is taken too)."""

    payload = PostAccountTransactionPaymentIn(help_text="The payment to post.")


class AccountTransactionPaymentOut(serializers.Serializer):
    StudentAccountTransactionId = serializers.IntegerField(help_text="The payment's ledger id.")
    StudentId = serializers.CharField(help_text=STUDENT_ID_HELP)
    TransactionAmount = MoneyOutField(help_text="The payment.")
    AppliedAmount = MoneyOutField(help_text="What of it is applied to charges now.")
    UnappliedAmount = MoneyOutField(help_text="What of it is the student's credit now.")
    TransactionDate = serializers.CharField(help_text="As posted (00:00:00).")
    PaymentMode = serializers.IntegerField(help_text="2 (unscheduled).")
    PaymentType = serializers.CharField(help_text=PAYMENT_TYPE_HELP)
    Description = serializers.CharField(help_text="As posted.")
    StudentAwardId = serializers.IntegerField(help_text="The student award it is tied to.")
    IsNewStudentAward = serializers.BooleanField(
        help_text="True when this payment created the award (else an existing one was used)."
    )
    FundSourceId = serializers.IntegerField(help_text="As posted.")
    AwardYear = serializers.CharField(help_text="As posted.")
    StudentEnrollmentPeriodId = serializers.IntegerField(help_text="As posted.")
    StudentAcademicYearId = serializers.IntegerField(
        allow_null=True, help_text="The award's student academic year."
    )
    BankAccountId = serializers.IntegerField(allow_null=True, help_text="As posted.")
    CashDrawerId = serializers.IntegerField(
        allow_null=True, help_text="The drawer of the session it went into, if any."
    )
    CashDrawerSessionId = serializers.IntegerField(
        allow_null=True, help_text="The session it went into, if any."
    )
    CashierUserId = serializers.IntegerField(allow_null=True, help_text="As posted.")
    VendorTransactionId = serializers.CharField(
        help_text="Your id, or the one FeeSync gave it when you sent none."
    )
    IsReplay = serializers.BooleanField(
        help_text="True when this VendorTransactionId was posted before: this is that posting."
    )


class _Data(serializers.Serializer):
    # Only describes the answer (never validates), so shadowing Serializer.data is moot.
    data = AccountTransactionPaymentOut(help_text="The posted payment.")  # type: ignore[assignment]


class AccountTransactionPaymentResult(serializers.Serializer):
    payload = _Data(help_text="Anthology's command answer: the result is in `data`.")


def unwrap(body: Any) -> Any:
    """The command's properties, from `{"payload": {...}}` or a bare body."""
    if isinstance(body, dict) and set(body) == {"payload"} and isinstance(body["payload"], dict):
        return body["payload"]
    return body
