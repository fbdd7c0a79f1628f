"""What `ledger_check` verifies about the business office's records (issue 14).

Each check is one set-based query returning its offending rows (plain SQL that PostgreSQL
and the demo's SQLite both run), registered with the ledger's own
(`apps.fees.selectors.register_check`); an area adds its list here.

Refunds: a paid (P) or voided (V) refund's refund entries exist, are refunds of that
student's credit (on no fee) and add up to its amount, and `Refund.entry` is one of them; a
voided refund's reversing entries add up to it too; a refund not yet paid (N, S) has no
entries. With the ledger's own checks (a refund of credit is allocated in full out of a
payment's credit, the credit row equals the unallocated payments) this proves every dollar
a refund paid out came out of the student's credit, and the credit is never negative.

Receipts: a receipt of a released business date is tied to that release and every release
counts exactly the receipts tied to it.
"""

from __future__ import annotations

#: (name, message template, SQL) like apps.fees.selectors.CHECKS.
REFUND_CHECKS: list[tuple[str, str, str]] = [
    (
        "refund_paid_entries",
        "refund {0} ({1}) of {2}: its refund entries add up to {3} (entry {4})",
        """
        SELECT r.id, r.status, r.amount, COALESCE(SUM(e.amount), 0), COALESCE(r.entry_id, 0)
        FROM accounting_refund r
        LEFT JOIN accounting_entrybooking b ON b.refund_id = r.id
        LEFT JOIN fees_ledgerentry e ON e.id = b.entry_id AND e.kind = 'refund'
             AND e.fee_id IS NULL AND e.student_id = r.student_id
        WHERE r.status IN ('P', 'V')
        GROUP BY r.id, r.status, r.amount, r.entry_id
        HAVING COALESCE(SUM(e.amount), 0) <> r.amount
            OR MAX(CASE WHEN e.id = r.entry_id THEN 1 ELSE 0 END) = 0
        ORDER BY r.id LIMIT 50
        """,
    ),
    (
        "refund_void_entries",
        "refund {0} (voided) of {1}: its reversing entries add up to {2}",
        """
        SELECT r.id, r.amount, COALESCE(SUM(v.amount), 0)
        FROM accounting_refund r
        LEFT JOIN accounting_entrybooking b ON b.refund_id = r.id
        LEFT JOIN fees_ledgerentry v ON v.id = b.entry_id AND v.kind = 'payment'
             AND v.fee_id IS NULL AND v.reverses_id IS NOT NULL
        WHERE r.status = 'V'
        GROUP BY r.id, r.amount, r.void_entry_id
        HAVING COALESCE(SUM(v.amount), 0) <> r.amount
            OR MAX(CASE WHEN v.id = r.void_entry_id THEN 1 ELSE 0 END) = 0
        ORDER BY r.id LIMIT 50
        """,
    ),
    (
        "refund_unpaid_has_entries",
        "refund {0} is {1} (not paid) but has {2} entries booked to it",
        """
        SELECT r.id, r.status, COUNT(b.entry_id) FROM accounting_refund r
        JOIN accounting_entrybooking b ON b.refund_id = r.id
        WHERE r.status IN ('N', 'S') GROUP BY r.id, r.status ORDER BY r.id LIMIT 50
        """,
    ),
    (
        "credit_not_negative",
        "student {0}: credit on account is {1}",
        """
        SELECT student_id, amount FROM fees_studentcredit WHERE amount < 0
        ORDER BY student_id LIMIT 50
        """,
    ),
]

RECEIPT_CHECKS: list[tuple[str, str, str]] = [
    (
        "receipt_released",
        "receipt {0} of {1}: its date is released but the receipt is not in the release",
        """
        SELECT r.id, r.receipt_date FROM accounting_misccashreceipt r
        JOIN accounting_glrelease g ON g.business_date = r.receipt_date
        WHERE r.release_id IS NULL OR r.release_id <> g.id ORDER BY r.id LIMIT 50
        """,
    ),
    (
        "release_receipt_count",
        "GL release of {0}: counts {1} receipts but {2} are tied to it",
        """
        SELECT g.business_date, g.receipt_count, COUNT(r.id) FROM accounting_glrelease g
        LEFT JOIN accounting_misccashreceipt r ON r.release_id = g.id
        GROUP BY g.id, g.business_date, g.receipt_count
        HAVING COUNT(r.id) <> g.receipt_count ORDER BY g.business_date LIMIT 50
        """,
    ),
]


def register_ledger_checks() -> None:
    from apps.fees.selectors import register_check

    for name, template, sql in [*REFUND_CHECKS, *RECEIPT_CHECKS]:
        register_check(name, template, sql)
