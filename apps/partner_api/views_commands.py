"""Anthology's command endpoints (`/api/commands/<Domain>/<Entity>/<Command>`).

Their requests come as Anthology's command APIs send them, `{"payload": {...}}` (a bare
body is taken too), and their answers are wrapped the same way, `{"payload": {"data":
{...}}}`. Errors are RFC 9457 problem documents like the rest of the API: one answer names
every missing or invalid property, those of the shape (400) with those naming records that
do not fit (all in one 400; 422 when only records are wrong)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from . import services_commands
from .idempotency import idempotent
from .permissions import api_user_of
from .problems import flatten, problem_handler, problem_response
from .serializers_commands import (
    AccountTransactionPaymentResult,
    PostAccountTransactionPaymentCommand,
    PostAccountTransactionPaymentIn,
    unwrap,
)
from .views import IDEMPOTENCY, PROBLEMS, _Operation


def _valid_values(serializer: serializers.Serializer, body: Any, bad: set[str]) -> dict[str, Any]:
    """The properties that are well formed, read one by one, when the body as a whole is
    not: so that the records they name can be checked in the same answer."""
    values: dict[str, Any] = {}
    if not isinstance(body, dict):
        return values
    for name, fld in serializer.fields.items():
        if name in bad:
            continue
        try:
            values[name] = fld.run_validation(body[name] if name in body else serializers.empty)
        except (serializers.ValidationError, serializers.SkipField):
            continue
    return values


class PostAccountTransactionPayment(_Operation):
    operation = services_commands.COMMAND_OP

    @extend_schema(
        operation_id="post_account_transaction_payment",
        summary="Post an unscheduled payment to a fund source (PostAccountTransactionPayment)",
        description="Posts a payment to the student's ledger card tied to the student award "
        "for (StudentEnrollmentPeriodId, FundSourceId, AwardYear), created if the student has "
        "none. PaymentMode must be 2. BankAccountId must be at a bank of the enrollment "
        "period's school; when that school takes payments at cash drawers, CashDrawerId, "
        "CashDrawerSessionId (an open session) and CashierUserId are required. The request "
        'may be wrapped as Anthology\'s commands are, {"payload": {...}}, or bare; the '
        'answer is {"payload": {"data": {...}}}. Requires '
        "StudentAccounts.StudentAccountTransaction.New (Student Accounts - Student Account "
        "Transaction - New).",
        request=PostAccountTransactionPaymentCommand,
        parameters=[IDEMPOTENCY],
        responses={
            (201, "application/json"): AccountTransactionPaymentResult,
            (200, "application/json"): OpenApiResponse(
                AccountTransactionPaymentResult, description="A replay: posted before."
            ),
            **PROBLEMS,
        },
        tags=["Student accounts (commands)"],
    )
    def post(self, request: Request) -> Response:
        api_user = api_user_of(request)

        def handle() -> Response:
            try:
                body = unwrap(request.data)
                serializer = PostAccountTransactionPaymentIn(data=body)
                if not serializer.is_valid():
                    errors = flatten(serializer.errors)
                    bad = {e["property"] for e in errors}
                    values = _valid_values(serializer, body, bad)
                    refs = services_commands.references_check(api_user=api_user, values=values)
                    errors += [e for e in refs.errors if e["property"] not in bad]
                    names = sorted({e["property"] for e in errors})
                    return problem_response(
                        400,
                        "Invalid request",
                        "These properties are not valid: " + ", ".join(names) + ".",
                        errors=errors,
                    )
                with transaction.atomic():
                    result = services_commands.payment_command_post(
                        api_user=api_user, data=serializer.validated_data
                    )
                return Response(result.body, status=200 if result.replay else 201)
            except Exception as exc:
                response = problem_handler(exc, {"request": request, "view": self})
                if response is None:
                    raise
                return response

        return idempotent(request, api_user, self.operation, handle, log=True)
