"""The partner API's endpoints: parse with a serializer, call one service, answer.

Paths and property names are Anthology Student's payment-partner contract's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .calls import call_log
from .idempotency import HEADER, idempotent, replayed
from .permissions import api_user_of
from .problems import problem_handler
from .serializers import (
    ApplyIn,
    ApplyOut,
    ChargeIn,
    ChargeOut,
    PaymentIn,
    PaymentOut,
    PlanCreateIn,
    PlanOut,
    PlanUpdateIn,
)


class ProblemSchema(serializers.Serializer):
    type = serializers.CharField(help_text="What kind of problem (a URI reference).")
    title = serializers.CharField(help_text="The problem in a few words.")
    status = serializers.IntegerField(help_text="The HTTP status.")
    detail = serializers.CharField(help_text="What is wrong, in a sentence.")
    # Only describes the document (never validates), so shadowing Serializer.errors is moot.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.DictField(child=serializers.CharField()),
        required=False,
        help_text="One {property, detail} per bad property.",
    )
    permission = serializers.CharField(required=False, help_text="The permission missing (403).")


def _problem(description: str) -> OpenApiResponse:
    return OpenApiResponse(ProblemSchema, description=description)


PROBLEM = "application/problem+json"
PROBLEMS: dict[Any, OpenApiResponse] = {
    (400, PROBLEM): _problem("A property is not valid (each is named in `errors`)."),
    (401, PROBLEM): _problem("Not signed in."),
    (403, PROBLEM): _problem("Not an API user, or the operation's permission is missing."),
    (404, PROBLEM): _problem("No such resource."),
    (415, PROBLEM): _problem("The body is not JSON."),
    (422, PROBLEM): _problem(
        "Refused: the ledger's rules, or an Idempotency-Key used for another body."
    ),
}
IDEMPOTENCY = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Replays the first response to a retry with the same key and body (kept at "
    "least 24 hours); the same key with another body is a 422.",
)


class _Refused(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A request refused with `response` after it may have written: raised out of its
    transaction so that everything it wrote is rolled back with it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _Operation(APIView):
    operation = ""

    def run(
        self, request: Request, serializer_class: type[Any], work: Callable[..., Any]
    ) -> Response:
        api_user = api_user_of(request)

        def handle() -> Response:
            try:
                serializer = serializer_class(data=request.data)
                serializer.is_valid(raise_exception=True)
                return work(api_user, serializer)
            except Exception as exc:
                response = problem_handler(exc, {"request": request, "view": self})
                if response is None:
                    raise
                raise _Refused(response) from exc

        # A retry of an answered request is answered at once, before the body is parsed;
        # its call is logged on its own (one INSERT, no transaction around it).
        if (response := replayed(request, api_user)) is not None:
            call_log(api_user=api_user, operation=self.operation, response=response)
            return response
        try:
            # The posting, the key's stored answer and the call's log row commit together:
            # one transaction, one commit, and no savepoint (two round trips on the path of
            # every payment).
            with transaction.atomic():
                return idempotent(request, api_user, self.operation, handle, log=True)
        except _Refused as refused:
            # Rolled back whole, the key's claim with it; the refusal is then kept as the
            # key's answer in a transaction of its own (or, when a concurrent request with
            # the key answered meanwhile, that answer is replayed).
            answer = refused.response
            with transaction.atomic():
                return idempotent(request, api_user, self.operation, lambda: answer, log=True)


class LedgerPaymentTransactions(_Operation):
    operation = "StudentAccounting.LedgerPaymentTransactions.Create"

    @extend_schema(
        operation_id="post_ledger_payment_transaction",
        summary="Post a payment to a student's ledger card",
        description="Posts the payment; with ScheduledDisbursementId or "
        "UseNextScheduledPayment it pays that installment and auto-adjusts the plan's "
        "schedule. Requires StudentAccounting.LedgerPaymentTransactions.Create.",
        request=PaymentIn,
        parameters=[IDEMPOTENCY],
        responses={
            (201, "application/json"): PaymentOut,
            (200, "application/json"): OpenApiResponse(
                PaymentOut, description="A replay: posted before."
            ),
            **PROBLEMS,
        },
        tags=["Student accounting"],
    )
    def post(self, request: Request) -> Response:
        def work(api_user: Any, serializer: PaymentIn) -> Response:
            result = services.payment_post(api_user=api_user, data=serializer.validated_data)
            return Response(result.body, status=200 if result.replay else 201)

        return self.run(request, PaymentIn, work)


class LedgerChargeOrAdjustmentTransactions(_Operation):
    operation = "StudentAccounting.LedgerChargeOrAdjustmentTransactions.Create"

    @extend_schema(
        operation_id="post_ledger_chargeoradjustment_transaction",
        summary="Post a charge, or a debit or credit adjustment, to a student's ledger card",
        description="A charge becomes a FeeSync fee (so it is sent to the payment vendors "
        "whose scope it is in); an adjustment raises or lowers a charge. TermId is required "
        "when the district requires term codes. Requires "
        "StudentAccounting.LedgerChargeOrAdjustmentTransactions.Create.",
        request=ChargeIn,
        parameters=[IDEMPOTENCY],
        responses={
            (201, "application/json"): ChargeOut,
            (200, "application/json"): OpenApiResponse(
                ChargeOut, description="A replay: posted before."
            ),
            **PROBLEMS,
        },
        tags=["Student accounting"],
    )
    def post(self, request: Request) -> Response:
        def work(api_user: Any, serializer: ChargeIn) -> Response:
            result = services.charge_post(api_user=api_user, data=serializer.validated_data)
            return Response(result.body, status=200 if result.replay else 201)

        return self.run(request, ChargeIn, work)


class LedgerTransactionsApplyPayments(_Operation):
    operation = "StudentAccounting.LedgerTransactionsApplyPayments.Create"

    @extend_schema(
        operation_id="post_ledger_transactions_applypayments",
        summary="Apply a payment or credit adjustment to charges",
        description="All listed applications or none; never more than is left to apply on "
        "either side (a 422 naming the transaction). With the district's auto-apply on, the "
        "payment and the charges are flagged manual and automatic application leaves them "
        "alone. Requires StudentAccounting.LedgerTransactionsApplyPayments.Create.",
        request=ApplyIn,
        parameters=[IDEMPOTENCY],
        responses={(200, "application/json"): ApplyOut, **PROBLEMS},
        tags=["Student accounting"],
    )
    def post(self, request: Request) -> Response:
        def work(api_user: Any, serializer: ApplyIn) -> Response:
            body = services.apply_post(api_user=api_user, data=serializer.validated_data)
            return Response(body, status=200)

        return self.run(request, ApplyIn, work)


class StudentPaymentPlan(_Operation):
    @property
    def operation(self) -> str:  # type: ignore[override]
        verb = "Update" if self.request.method == "PATCH" else "Create"
        return f"StudentPaymentPlan.StudentPaymentPlan.{verb}"

    @extend_schema(
        operation_id="post_student_payment_plan",
        summary="Create a student payment plan",
        description="Creates the plan and its scheduled payments. Requires "
        "StudentPaymentPlan.StudentPaymentPlan.Create.",
        request=PlanCreateIn,
        parameters=[IDEMPOTENCY],
        responses={(201, "application/json"): PlanOut, **PROBLEMS},
        tags=["Student payment plan"],
    )
    def post(self, request: Request) -> Response:
        def work(api_user: Any, serializer: PlanCreateIn) -> Response:
            data = serializer.validated_data
            body = services.plan_post(api_user=api_user, data=data, terms=serializer.terms(data))
            return Response(body, status=201)

        return self.run(request, PlanCreateIn, work)

    @extend_schema(
        operation_id="patch_student_payment_plan",
        summary="Update a student payment plan",
        description="Adds scheduled payments, or with IsScheduledPaymentsRemoved replaces "
        "every scheduled (S) or cancelled (C) one; paid ones are never touched. Requires "
        "StudentPaymentPlan.StudentPaymentPlan.Update.",
        request=PlanUpdateIn,
        parameters=[IDEMPOTENCY],
        responses={(200, "application/json"): PlanOut, **PROBLEMS},
        tags=["Student payment plan"],
    )
    def patch(self, request: Request) -> Response:
        def work(api_user: Any, serializer: PlanUpdateIn) -> Response:
            data = serializer.validated_data
            body = services.plan_patch(api_user=api_user, data=data, terms=serializer.terms(data))
            return Response(body, status=200)

        return self.run(request, PlanUpdateIn, work)
