"""What `ledger_check` verifies about money the sync engine held for staff.

A held vendor payment that staff kept as the student's credit (`HeldMovement` status
`credited`) must have exactly the entry `movement_credit` posts: a payment of the held amount,
on no fee, for the held fee's student, keyed by that integration and the vendor's id. With
the ledger's own `student_credit` check (every unallocated payment is on the student's
credit row) this accounts for every such credit from the vendor's report to the account."""

from __future__ import annotations

HELD_CREDITED_SQL = """
SELECT h.id, h.vendor_ref, COALESCE(CAST(e.id AS TEXT), 'none')
FROM vendors_heldmovement h
JOIN fees_fee f ON f.id = h.fee_id
LEFT JOIN fees_ledgerentry e ON e.id = h.entry_id
WHERE h.status = 'credited'
  AND (e.id IS NULL OR e.kind <> 'payment' OR e.fee_id IS NOT NULL OR e.amount <> h.amount
       OR e.student_id <> f.student_id
       OR e.external_source <> 'integration:' || CAST(h.integration_id AS TEXT)
       OR e.external_id <> h.vendor_ref)
ORDER BY h.id LIMIT 50
"""


def register_ledger_checks() -> None:
    from apps.fees.selectors import register_check

    register_check(
        "held_credited",
        "held movement {0} ({1}): kept as credit, but its entry ({2}) is not the payment on "
        "no fee for that student, amount and vendor id",
        HELD_CREDITED_SQL,
    )
