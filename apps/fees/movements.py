"""The ledger's words for money that moves outside FeeSync.

Kept free of Django models so that the vendor adapters (and their standalone sandboxes) can
speak them without loading the ledger: an adapter reports a `MovementKind`, and the one
door (`apps.fees.services.outside.movements_record`) posts it.
"""

from __future__ import annotations

from enum import StrEnum


class MovementKind(StrEnum):
    """What happened at the source. `closed` is a flag on a payment, not a kind."""

    PAYMENT = "payment"
    WAIVER = "waiver"
    REFUND = "refund"  # gives back (part of) the payment it `refers_to`; with no fee but a
    # `student_id` (the partner API), pays back (part of) the student's credit
    VOID = "void"  # undoes the payment it `refers_to`, entered in error
    DISPUTE = "dispute"  # marks the fee disputed (no money moves; see services.dispute)
    # Ends the fee's dispute; or reverses (part of) the waiver it `refers_to` (none named:
    # the source's latest waiver on the fee). The file model's.
    RESTORE = "restore"
    # Posted by the partner API only (a vendor adapter never reports them):
    CHARGE = "charge"  # a new fee on the student's card (`Movement.charge` says what)
    DEBIT_ADJUSTMENT = "debit_adjustment"  # raises what the fee `fee_ref` charges
    CREDIT_ADJUSTMENT = "credit_adjustment"  # lowers what the fee `fee_ref` charges
