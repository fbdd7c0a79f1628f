"""The partner API's refund and miscellaneous-receipt operations (Anthology's scheduled
refunds, unscheduled refunds and misc cash receipts): parse, call one service of
apps.accounting.services, answer. Idempotency, permissions and problem documents are
part 1's (`views._Operation`)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounting.models import (
    BankAccount,
    CashDrawerSession,
    EntryBooking,
    MiscCashReceipt,
    Refund,
)
from apps.accounting.services import receipts as receipt_services
from apps.accounting.services import refunds as refund_services
from apps.fees.services import LedgerError, date_in_window, student_credit

from .problems import Problem, _printable, flatten
from .serializers_refunds import (
    ReceiptCreateIn,
    ReceiptOut,
    ReceiptUpdateIn,
    RefundIn,
    RefundStatusIn,
    RefundStatusOut,
    RefundTransactionOut,
    ScheduledRefundIn,
    ScheduledRefundsIn,
    ScheduledRefundsOut,
)
from .services import _category_for, _in_window, refused, student_for
from .views import IDEMPOTENCY, PROBLEMS, _Operation

TAG = ["Student accounting"]


def _date(value: Any) -> str:
    return f"{value.isoformat()}T00:00:00"


def refund_body(refund: Refund) -> dict[str, Any]:
    return {
        "RefundId": refund.pk,
        "StudentId": refund.student.student_number,
        "Amount": f"{refund.amount:.2f}",
        "DueDate": _date(refund.due_date),
        "Status": refund.status,
        "FundSourceId": refund.fund_source.code if refund.fund_source is not None else None,
        "StudentAwardId": refund.student_award_id,
        "StudentAccountTransactionId": refund.entry_id,
    }


def _bank_account(pk: int | None, prop: str = "BankAccountId") -> BankAccount | None:
    if pk is None:
        return None
    account = BankAccount.objects.filter(pk=pk, active=True).first()
    if account is None:
        raise refused(prop, f"No active bank account has the id {pk}.")
    return account


def _session(pk: int | None) -> CashDrawerSession | None:
    if pk is None:
        return None
    session = CashDrawerSession.objects.filter(pk=pk).first()
    if session is None:
        raise refused("CashDrawerSessionId", f"No cash drawer session has the id {pk}.")
    return session


def _ledger_refusal(prop: str, exc: LedgerError) -> Problem:
    return refused(prop, "; ".join(exc.messages))


# --- scheduled refunds ---------------------------------------------------------------------------


class ScheduledRefundsStatus(_Operation):
    operation = "StudentAccounting.ScheduledRefundsStatus.Update"

    @extend_schema(
        operation_id="patch_scheduled_refunds_status",
        summary="Select scheduled refunds for processing, or let them go again",
        description="N → S (select: the refund is no longer offered to anyone, and the "
        "district cannot pay it from its side) or S → N (only refunds you selected); nothing "
        "else. All listed refunds change or none; a 422 names each refund that cannot. "
        "Requires StudentAccounting.ScheduledRefundsStatus.Update.",
        request=RefundStatusIn,
        parameters=[IDEMPOTENCY],
        responses={(200, "application/json"): RefundStatusOut, **PROBLEMS},
        tags=TAG,
    )
    def patch(self, request: Request) -> Response:
        def work(api_user: Any, serializer: RefundStatusIn) -> Response:
            data = serializer.validated_data
            try:
                changed = refund_services.refunds_status_set(
                    refund_ids=data["RefundIds"], status=data["Status"], api_user=api_user
                )
            except refund_services.RefundStatusRefused as exc:
                errors = [
                    {"property": f"RefundIds[{p.index}]", "detail": p.detail} for p in exc.problems
                ]
                raise Problem(
                    422,
                    "Unprocessable content",
                    "; ".join(p.detail for p in exc.problems),
                    errors=errors,
                ) from None
            return Response({"Refunds": [refund_body(r) for r in changed]}, status=200)

        return self.run(request, RefundStatusIn, work)


def _element(
    index: int, raw: Any, serializer: ScheduledRefundIn
) -> tuple[refund_services.RefundPaid | None, dict[str, Any]]:
    """One element of the batch, checked alone: (what to post, or None, and its failure).
    `serializer` is one instance for the whole batch (its fields are built once, not a
    thousand times)."""
    refund_id = raw.get("RefundId") if isinstance(raw, dict) else None
    if not isinstance(refund_id, int) or isinstance(refund_id, bool):
        refund_id = None
    failure: dict[str, Any] = {
        "RefundId": refund_id,
        "IsSuccessful": False,
        "Status": None,
        "TransactionAmount": None,
        "StudentAccountTransactionIds": [],
        "IsReplay": False,
        "Errors": [],
    }
    try:
        data = serializer.run_validation(raw)
    except serializers.ValidationError as exc:
        failure["Errors"] = [
            {**e, "property": f"[{index}].{e['property']}"} for e in flatten(exc.detail)
        ]
        return None, failure
    try:
        bank = _bank_account(data.get("BankAccountId"))
    except Problem as exc:
        failure["Errors"] = [{"property": f"[{index}].BankAccountId", "detail": str(exc.detail)}]
        return None, failure
    if (day := data.get("TransactionDate")) is not None:
        try:
            date_in_window(day, label="TransactionDate")
        except LedgerError as exc:
            failure["Errors"] = [
                {"property": f"[{index}].TransactionDate", "detail": "; ".join(exc.messages)}
            ]
            return None, failure
    return (
        refund_services.RefundPaid(
            refund_id=data["RefundId"],
            transaction_date=data.get("TransactionDate"),
            payment_type=data["PaymentType"],
            bank_account=bank,
            description=(data.get("Description") or "").strip(),
            check_number=(data.get("CheckNumber") or "").strip(),
        ),
        failure,
    )


class LedgerScheduledRefundTransactions(_Operation):
    operation = "StudentAccounting.LedgerScheduledRefundTransactions.Create"

    @extend_schema(
        operation_id="post_ledger_scheduled_refund_transactions",
        summary="Post selected scheduled refunds as paid",
        description="The body is an array, one element per refund you paid (each selected by "
        "you, status S). Each is posted in its own unit of work: its refund entries on the "
        "ledger card, paid out of the student's credit, and the refund S → P. The answer has "
        "one result per element, in order, each with its own success or its errors: one bad "
        "element fails alone. A refund posted as paid before answers as a success with "
        "IsReplay true. Requires StudentAccounting.LedgerScheduledRefundTransactions.Create.",
        request=ScheduledRefundIn(many=True),
        parameters=[IDEMPOTENCY],
        responses={(200, "application/json"): ScheduledRefundsOut, **PROBLEMS},
        tags=TAG,
    )
    def post(self, request: Request) -> Response:
        def work(api_user: Any, serializer: ScheduledRefundsIn) -> Response:
            results: list[dict[str, Any]] = []
            todo: list[tuple[int, refund_services.RefundPaid]] = []
            checker = ScheduledRefundIn()
            for i, raw in enumerate(serializer.validated_data):
                item, failure = _element(i, raw, checker)
                results.append(failure)
                if item is not None:
                    todo.append((i, item))
            outcomes = refund_services.refunds_post_scheduled(
                api_user=api_user, items=[item for _, item in todo]
            )
            for (i, _), outcome in zip(todo, outcomes, strict=True):
                body = results[i]
                body["RefundId"] = outcome.refund_id
                if outcome.ok and outcome.refund is not None:
                    body.update(
                        IsSuccessful=True,
                        Status=outcome.refund.status,
                        TransactionAmount=f"{outcome.refund.amount:.2f}",
                        StudentAccountTransactionIds=[e.pk for e in outcome.entries],
                        IsReplay=outcome.replay,
                    )
                else:
                    body["Errors"] = [{"property": f"[{i}].RefundId", "detail": outcome.detail}]
            ok = sum(1 for r in results if r["IsSuccessful"])
            body = {"Results": results, "SucceededCount": ok, "FailedCount": len(results) - ok}
            # An element's errors echo its misspelt property names: without NUL and other
            # control characters, which the stored copy for replays cannot hold.
            return Response(_printable(body), status=200)

        return self.run(request, ScheduledRefundsIn, work)


# --- unscheduled refunds ----------------------------------------------------------------------


class LedgerRefundTransactions(_Operation):
    operation = "StudentAccounting.LedgerRefundTransactions.Create"

    @extend_schema(
        operation_id="post_ledger_refund_transaction",
        summary="Post a refund that was never scheduled",
        description="Pays the amount back out of the student's credit (a refund entry per "
        "payment the credit came from); refused (422) when the credit is smaller. Recorded "
        "once per VendorTransactionId. Requires "
        "StudentAccounting.LedgerRefundTransactions.Create.",
        request=RefundIn,
        parameters=[IDEMPOTENCY],
        responses={
            (201, "application/json"): RefundTransactionOut,
            (200, "application/json"): OpenApiResponse(
                RefundTransactionOut, description="A replay: posted before."
            ),
            **PROBLEMS,
        },
        tags=TAG,
    )
    def post(self, request: Request) -> Response:
        def work(api_user: Any, serializer: RefundIn) -> Response:
            data = serializer.validated_data
            student = student_for(data["StudentId"])
            _in_window(data["TransactionDate"], "TransactionDate")
            bank = _bank_account(data.get("BankAccountId"))
            try:
                done = refund_services.refund_post_unscheduled(
                    api_user=api_user,
                    student=student,
                    amount=data["TransactionAmount"],
                    external_id=data["VendorTransactionId"].strip(),
                    description=data["Description"].strip(),
                    transaction_date=data["TransactionDate"],
                    payment_type=data["PaymentType"],
                    bank_account=bank,
                    check_number=(data.get("CheckNumber") or "").strip(),
                )
            except LedgerError as exc:
                raise _ledger_refusal("TransactionAmount", exc) from None
            first = done.entries[0]
            booking = EntryBooking.objects.filter(entry=first).first()
            amount = (
                data["TransactionAmount"] if done.replay else sum(e.amount for e in done.entries)
            )
            body = {
                "StudentAccountTransactionId": first.pk,
                "StudentAccountTransactionIds": [e.pk for e in done.entries],
                "StudentId": student.student_number,
                "TransactionAmount": f"{amount:.2f}",
                "TransactionDate": _date(
                    booking.business_date if booking else timezone.localdate()
                ),
                "PaymentType": booking.payment_type if booking else data["PaymentType"],
                "Description": first.reason,
                "VendorTransactionId": first.external_id,
                "CreditAmount": f"{student_credit(student=student):.2f}",
                "IsReplay": done.replay,
            }
            return Response(body, status=200 if done.replay else 201)

        return self.run(request, RefundIn, work)


# --- miscellaneous cash receipts ------------------------------------------------------------


def receipt_body(receipt: MiscCashReceipt, *, replay: bool) -> dict[str, Any]:
    return {
        "MiscCashReceiptId": receipt.pk,
        "BillingTransactionCodeId": receipt.billing_code.code,
        "TransactionAmount": f"{receipt.amount:.2f}",
        "TransactionDate": _date(receipt.receipt_date),
        "PaymentType": receipt.payment_type,
        "Description": receipt.description,
        "PayerName": receipt.payer,
        "BankAccountId": receipt.bank_account_id,
        "CashDrawerSessionId": receipt.cash_session_id,
        "VendorTransactionId": receipt.external_id,
        "IsReleased": receipt.release_id is not None,
        "IsReplay": replay,
    }


_RECEIPT_PROPS = {
    "billing_code": "BillingTransactionCodeId",
    "amount": "TransactionAmount",
    "receipt_date": "TransactionDate",
    "payment_type": "PaymentType",
    "cash_session": "CashDrawerSessionId",
}


def _receipt_refusal(exc: LedgerError) -> Problem:
    """The ledger's sentence, named after the property it is about."""
    text = "; ".join(exc.messages)
    prop = "(body)"
    if "Billing code" in text:
        prop = "BillingTransactionCodeId"
    elif "released" in text or "date" in text:
        prop = "TransactionDate"
    elif "session" in text:
        prop = "CashDrawerSessionId"
    elif "payment type" in text:
        prop = "PaymentType"
    elif "$" in text or "Amount" in text:
        prop = "TransactionAmount"
    return refused(prop, text)


def _receipt_changes(api_user: Any, data: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "BillingTransactionCodeId" in data:
        changes["billing_code"] = _category_for(api_user, data["BillingTransactionCodeId"])
    simple = {
        "TransactionAmount": "amount",
        "TransactionDate": "receipt_date",
        "PaymentType": "payment_type",
        "Description": "description",
        "PayerName": "payer",
    }
    for prop, name in simple.items():
        if prop in data:
            changes[name] = data[prop]
    if "BankAccountId" in data:
        changes["bank_account"] = _bank_account(data["BankAccountId"])
    if "CashDrawerSessionId" in data:
        changes["cash_session"] = _session(data["CashDrawerSessionId"])
    return changes


class MiscCashReceipts(_Operation):
    @property
    def operation(self) -> str:  # type: ignore[override]
        verb = "Update" if self.request.method == "PATCH" else "Create"
        return f"StudentAccounting.MiscCashReceipts.{verb}"

    @extend_schema(
        operation_id="post_misc_cash_receipt",
        summary="Post a miscellaneous cash receipt (money on no student's card)",
        description="A facility rental, a donation, a vendor rebate: its billing code must be "
        "one whose Usage is M or A (a 422 says so otherwise), its date one not yet released to "
        "the general ledger. Recorded once per VendorTransactionId. Requires "
        "StudentAccounting.MiscCashReceipts.Create.",
        request=ReceiptCreateIn,
        parameters=[IDEMPOTENCY],
        responses={
            (201, "application/json"): ReceiptOut,
            (200, "application/json"): OpenApiResponse(
                ReceiptOut, description="A replay: posted before."
            ),
            **PROBLEMS,
        },
        tags=TAG,
    )
    def post(self, request: Request) -> Response:
        def work(api_user: Any, serializer: ReceiptCreateIn) -> Response:
            data = serializer.validated_data
            changes = _receipt_changes(api_user, data)
            try:
                done = receipt_services.receipt_create(
                    data=receipt_services.ReceiptData(
                        billing_code=changes["billing_code"],
                        amount=changes["amount"],
                        receipt_date=changes["receipt_date"],
                        payment_type=changes["payment_type"],
                        description=changes.get("description", ""),
                        payer=changes.get("payer", ""),
                        bank_account=changes.get("bank_account"),
                        cash_session=changes.get("cash_session"),
                    ),
                    api_user=api_user,
                    external_id=data["VendorTransactionId"].strip(),
                )
            except LedgerError as exc:
                raise _receipt_refusal(exc) from None
            return Response(
                receipt_body(done.receipt, replay=done.replay),
                status=200 if done.replay else 201,
            )

        return self.run(request, ReceiptCreateIn, work)

    @extend_schema(
        operation_id="patch_misc_cash_receipt",
        summary="Change a miscellaneous cash receipt",
        description="Changes the properties sent. A receipt released to the general ledger "
        "(or of a released date, or moved to one) can no longer change: 422. Only your own "
        "receipts (404 otherwise). Requires StudentAccounting.MiscCashReceipts.Update.",
        request=ReceiptUpdateIn,
        parameters=[IDEMPOTENCY],
        responses={(200, "application/json"): ReceiptOut, **PROBLEMS},
        tags=TAG,
    )
    def patch(self, request: Request) -> Response:
        def work(api_user: Any, serializer: ReceiptUpdateIn) -> Response:
            data = serializer.validated_data
            pk = data["MiscCashReceiptId"]
            receipt = MiscCashReceipt.objects.filter(pk=pk, api_user=api_user).first()
            if receipt is None:
                raise refused("MiscCashReceiptId", f"You have no miscellaneous receipt {pk}.", 404)
            changes = _receipt_changes(api_user, data)
            try:
                receipt = receipt_services.receipt_update(receipt=receipt, changes=changes)
            except LedgerError as exc:
                raise _receipt_refusal(exc) from None
            return Response(receipt_body(receipt, replay=False), status=200)

        return self.run(request, ReceiptUpdateIn, work)


__all__ = [
    "LedgerRefundTransactions",
    "LedgerScheduledRefundTransactions",
    "MiscCashReceipts",
    "ScheduledRefundsStatus",
]
