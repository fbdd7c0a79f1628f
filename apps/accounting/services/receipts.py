"""Miscellaneous cash receipts: money on no student's card (a facility rental, a donation, a
vendor rebate), entered by staff in the admin or posted by a vendor.

Its billing code (a fee category) must be one whose usage is M (miscellaneous receipts) or
A (all); a receipt of a business date released to the general ledger can no longer change,
and none can be added on such a date (`close.open_business_date`). A vendor's receipt is
recorded once per its own id (a repeat answers with the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from apps.categories.models import FeeCategory
from apps.fees.services import LedgerError, date_in_window, to_money

from ..models import BankAccount, CashDrawerSession, MiscCashReceipt, PaymentType
from .close import open_business_date

USABLE = (FeeCategory.Usage.MISC, FeeCategory.Usage.ALL)


def check_billing_code(code: FeeCategory) -> None:
    if code.usage not in USABLE:
        raise LedgerError(
            f"Billing code {code.code} is for {code.get_usage_display().lower()} (usage "
            f"{code.usage}); a miscellaneous cash receipt needs a code whose usage is M or A."
        )
    if not code.active:
        raise LedgerError(f"Billing code {code.code} is inactive.")


def _check_session(session: CashDrawerSession | None) -> None:
    if session is not None and session.status != CashDrawerSession.Status.OPEN:
        raise LedgerError(
            f"Cash drawer session {session.pk} is {session.get_status_display().lower()}; "
            "receipts go into an open session only."
        )


@dataclass(frozen=True)
class ReceiptData:
    billing_code: FeeCategory
    amount: Decimal
    receipt_date: date
    payment_type: str
    description: str = ""
    payer: str = ""
    bank_account: BankAccount | None = None
    cash_session: CashDrawerSession | None = None


def _validate(data: ReceiptData) -> None:
    check_billing_code(data.billing_code)
    to_money(data.amount)
    date_in_window(data.receipt_date, label="The receipt date")
    if data.payment_type not in PaymentType.values:
        raise LedgerError(f"“{data.payment_type}” is not a payment type (C, E, H, I, R or O).")
    _check_session(data.cash_session)


@dataclass
class ReceiptResult:
    receipt: MiscCashReceipt
    replay: bool


@transaction.atomic
def receipt_create(
    *,
    data: ReceiptData,
    user: AbstractBaseUser | None = None,
    api_user: Any = None,
    external_id: str = "",
) -> ReceiptResult:
    """Record a miscellaneous cash receipt (staff, or a vendor's API user with its id)."""
    if api_user is not None and external_id:
        first = MiscCashReceipt.objects.filter(api_user=api_user, external_id=external_id).first()
        if first is not None:
            return ReceiptResult(first, replay=True)
    _validate(data)
    open_business_date(data.receipt_date, label="The receipt date")
    try:
        with transaction.atomic():
            receipt = MiscCashReceipt.objects.create(
                billing_code=data.billing_code,
                amount=to_money(data.amount),
                receipt_date=data.receipt_date,
                payment_type=data.payment_type,
                description=data.description.strip(),
                payer=data.payer.strip(),
                bank_account=data.bank_account,
                cash_session=data.cash_session,
                api_user=api_user,
                external_id=external_id,
                created_by=user if user is not None and user.pk else None,  # type: ignore[misc]
            )
    except IntegrityError:
        first = MiscCashReceipt.objects.filter(api_user=api_user, external_id=external_id).first()
        if first is None:
            raise
        return ReceiptResult(first, replay=True)
    return ReceiptResult(receipt, replay=False)


def check_unreleased(receipt: MiscCashReceipt) -> None:
    if receipt.release_id is not None:
        raise LedgerError(
            f"Receipt {receipt.pk} was released to the general ledger on "
            f"{receipt.receipt_date:%m/%d/%Y}; it can no longer be changed."
        )


@transaction.atomic
def receipt_update(*, receipt: MiscCashReceipt, changes: dict[str, Any]) -> MiscCashReceipt:
    """Change a receipt not yet released (its date, and a new date, both still open).
    `changes` holds ReceiptData's field names."""
    receipt = MiscCashReceipt.objects.select_for_update().get(pk=receipt.pk)
    check_unreleased(receipt)
    open_business_date(receipt.receipt_date, label="The receipt's business date")
    data = ReceiptData(
        billing_code=changes.get("billing_code", receipt.billing_code),
        amount=changes.get("amount", receipt.amount),
        receipt_date=changes.get("receipt_date", receipt.receipt_date),
        payment_type=changes.get("payment_type", receipt.payment_type),
        description=changes.get("description", receipt.description),
        payer=changes.get("payer", receipt.payer),
        bank_account=changes.get("bank_account", receipt.bank_account),
        cash_session=changes.get("cash_session", receipt.cash_session),
    )
    _validate(data)
    if data.receipt_date != receipt.receipt_date:
        open_business_date(data.receipt_date, label="The new receipt date")
    for name in ReceiptData.__dataclass_fields__:
        value = getattr(data, name)
        setattr(receipt, name, value.strip() if isinstance(value, str) else value)
    receipt.amount = to_money(data.amount)
    receipt.save()
    return receipt
