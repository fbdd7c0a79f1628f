"""Admin pages: miscellaneous cash receipts (money on no student's card), entered and
corrected by staff until their business date is released to the general ledger."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.common.admin import FeeSyncMedia, NotFoundMixin, staff_user
from apps.fees.services import LedgerError

from ..models import MiscCashReceipt
from ..services.close import date_released
from ..services.receipts import (
    ReceiptData,
    check_billing_code,
    check_unreleased,
    receipt_create,
    receipt_update,
)

FIELDS = [
    "billing_code",
    "amount",
    "receipt_date",
    "payment_type",
    "description",
    "payer",
    "bank_account",
    "cash_session",
]


class ReceiptForm(forms.ModelForm[MiscCashReceipt]):
    """Checks what the service will check, so a refusal is shown on the form."""

    class Meta:
        model = MiscCashReceipt
        fields = FIELDS
        widgets = {"receipt_date": forms.DateInput(attrs={"type": "date"})}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.pk:
            try:
                check_unreleased(self.instance)
            except LedgerError as exc:
                raise forms.ValidationError(exc.messages) from None
        code = data.get("billing_code")
        if code is not None:
            try:
                check_billing_code(code)
            except LedgerError as exc:
                self.add_error("billing_code", exc.messages)
        day = data.get("receipt_date")
        if day is not None and date_released(day):
            self.add_error(
                "receipt_date",
                f"{day:%m/%d/%Y} has been released to the general ledger; pick a later date.",
            )
        session = data.get("cash_session")
        if session is not None and session.status != "open":
            self.add_error("cash_session", "Receipts go into an open cash drawer session only.")
        return data


@admin.register(MiscCashReceipt)
class MiscCashReceiptAdmin(NotFoundMixin, admin.ModelAdmin[MiscCashReceipt]):
    form = ReceiptForm
    list_display = [
        "receipt_date",
        "billing_code",
        "amount",
        "payment_type",
        "payer",
        "bank_account",
        "released",
    ]
    list_filter = ["receipt_date", "payment_type", "billing_code"]
    search_fields = ["payer", "description", "external_id"]
    list_select_related = ["billing_code", "bank_account__bank"]
    Media = FeeSyncMedia

    @admin.display(boolean=True, description="Released")
    def released(self, obj: MiscCashReceipt) -> bool:
        return obj.release_id is not None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.release_id is not None:
            return False  # released to the general ledger: shown, never changed
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # money recorded: corrected by a change until released, never removed

    def save_model(
        self, request: HttpRequest, obj: MiscCashReceipt, form: Any, change: bool
    ) -> None:
        data = {name: form.cleaned_data.get(name) for name in FIELDS}
        data["description"] = data["description"] or ""
        data["payer"] = data["payer"] or ""
        if change:
            saved = receipt_update(receipt=obj, changes=data)
        else:
            saved = receipt_create(data=ReceiptData(**data), user=staff_user(request)).receipt
        obj.pk = saved.pk
        obj.refresh_from_db()
