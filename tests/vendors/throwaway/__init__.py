"""A throwaway integration kind, written the way docs/writing-an-integration.md says.

"Ledger Book" is a vendor that keeps its fees and payments in this process (the class
attribute `BOOK`), so the test that registers it needs no server; everything else about it
is what a real kind has: a declaration (name, description, capabilities, settings) and the
adapter methods of its capabilities. `tests/vendors/test_new_kind.py` registers it at run
time and takes it through setup, delivery and a pull without touching any other file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar

from django import forms

from apps.fees.movements import MovementKind
from apps.vendors.kinds.base import (
    AdapterConfig,
    Capability,
    CheckResult,
    FeeRecord,
    PaymentPage,
    PushResult,
    RefusedMovement,
    Setting,
    VendorAdapter,
    VendorError,
    VendorPayment,
    secret_text,
)


class LedgerBookAdapter(VendorAdapter):
    kind = "ledgerbook"
    name = "Ledger Book"
    description = "A vendor kept in a book: fees in, payments out (a test-only kind)."
    capabilities = frozenset({Capability.SEND, Capability.PULL})
    settings = {
        "token": secret_text("Access token"),
        "branch": Setting(
            forms.CharField(
                label="Branch",
                max_length=20,
                initial="main",
                help_text="Which branch of the book the district's fees go to.",
            )
        ),
    }

    #: The vendor's side: fee_ref -> the fee as sent; and payments taken there.
    BOOK: ClassVar[dict[str, FeeRecord]] = {}
    PAYMENTS: ClassVar[list[VendorPayment]] = []
    BRANCHES_SEEN: ClassVar[set[str]] = set()
    #: What FeeSync told the book it did not record, and why.
    REFUSED: ClassVar[list[RefusedMovement]] = []

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        if config.credentials.get("token") != "book-token":
            raise VendorError("The Ledger Book refused the access token.", permanent=True)
        self.BRANCHES_SEEN.add(str(config.options["branch"]))

    def test_pull(self) -> CheckResult:
        return CheckResult(True, "Read the book", f"{len(self.PAYMENTS)} payments", 1)

    def test_push(self) -> CheckResult:
        return CheckResult(True, "Write nothing to the book", "the book answered", 1)

    def push_fees(self, fees: Sequence[FeeRecord]) -> PushResult:
        for fee in fees:
            held = self.BOOK.get(fee.fee_ref)
            if held is None or held.version < fee.version:
                self.BOOK[fee.fee_ref] = fee
        return PushResult(acknowledged={f.fee_ref: self.BOOK[f.fee_ref].version for f in fees})

    def pull_payments(
        self,
        *,
        cursor: str | None = None,
        student_ids: Sequence[str] | None = None,
        limit: int = 500,
    ) -> PaymentPage:
        wanted = [
            p for p in self.PAYMENTS if student_ids is None or p.student_id in set(student_ids)
        ]
        return PaymentPage(payments=wanted, cursor=None, has_more=False)

    def movements_refused(self, refused: Sequence[RefusedMovement]) -> None:
        self.REFUSED.extend(refused)

    @classmethod
    def pay(cls, fee_ref: str, amount: str, *, student_id: str = "") -> VendorPayment:
        """A parent pays at the Ledger Book (for a fee it holds, or any reference)."""
        fee = cls.BOOK.get(fee_ref)
        payment = VendorPayment(
            payment_id=f"LB-{len(cls.PAYMENTS) + 1}-{int(time.time())}",
            fee_ref=fee_ref,
            student_id=fee.student_id if fee else student_id,
            amount=Decimal(amount),
            kind=MovementKind.PAYMENT,
        )
        cls.PAYMENTS.append(payment)
        return payment


Adapter = LedgerBookAdapter
