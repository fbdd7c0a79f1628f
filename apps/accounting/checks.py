"""What `ledger_check` verifies about the business office's records, one list per area
(each a named set-based query returning the offending rows, as `apps.fees.selectors.CHECKS`),
registered with the ledger check when the app loads.

Cashiering and awards (issue 14):
* `session_expected`: a closed or reconciled session's stored expected totals, per payment
  type, equal what its bookings' entries add up to (nothing was booked into it after it
  closed, nothing taken out);
* `session_difference`: a reconciled session's difference is its counted total minus its
  expected total;
* `session_after_close`: no entry booked into a session was posted after the session closed;
* `award_student`: every award-tied booking's award belongs to the entry's student (and
  the award's enrollment period to the same student).

Refunds (issue 14): a paid (P) or voided (V) refund's refund entries exist, are refunds of that
student's credit (on no fee) and add up to its amount, and `Refund.entry` is one of them; a
voided refund's reversing entries add up to it too; a refund not yet paid (N, S) has no
entries. With the ledger's own checks (a refund of credit is allocated in full out of a
payment's credit, the credit row equals the unallocated payments) this proves every dollar
a refund paid out came out of the student's credit, and the credit is never negative.

Receipts: a receipt of a released business date is tied to that release and every release
counts exactly the receipts tied to it.
"""

from __future__ import annotations

from django.db import connection

_DONE = "('closed', 'reconciled')"

#: The session's expected totals as rows (session id, payment type, amount), per database:
#: JSON is read with jsonb_each on PostgreSQL and json_each on SQLite (`make run`).
_EXPECTED_ROWS = {
    "postgresql": f"""
        SELECT s.id AS sid, kv.key AS pt, CAST(kv.value #>> '{{}}' AS numeric) AS total
        FROM accounting_cashdrawersession s, jsonb_each(s.expected) kv
        WHERE s.status IN {_DONE}
    """,
    "sqlite": f"""
        SELECT s.id AS sid, kv.key AS pt, CAST(kv.value AS NUMERIC) AS total
        FROM accounting_cashdrawersession s, json_each(s.expected) kv
        WHERE s.status IN {_DONE}
    """,
}
_COUNTED_SUMS = {
    "postgresql": """
        SELECT s.id AS sid, SUM(CAST(kv.value #>> '{{}}' AS numeric)) AS total
        FROM accounting_cashdrawersession s, jsonb_each(s.{0}) kv GROUP BY s.id
    """,
    "sqlite": """
        SELECT s.id AS sid, SUM(CAST(kv.value AS NUMERIC)) AS total
        FROM accounting_cashdrawersession s, json_each(s.{0}) kv GROUP BY s.id
    """,
}


def cashiering_checks(vendor: str) -> list[tuple[str, str, str]]:
    expected_rows = _EXPECTED_ROWS.get(vendor, _EXPECTED_ROWS["postgresql"])
    sums = _COUNTED_SUMS.get(vendor, _COUNTED_SUMS["postgresql"])
    return [
        (
            "session_expected",
            "cash drawer session {0}: expected {2} in payment type {1} but its bookings say {3}",
            f"""
            WITH booked AS (
                SELECT b.cash_session_id AS sid,
                       CASE WHEN b.payment_type = '' THEN 'O' ELSE b.payment_type END AS pt,
                       SUM(e.amount) AS total
                FROM accounting_entrybooking b JOIN fees_ledgerentry e ON e.id = b.entry_id
                JOIN accounting_cashdrawersession s ON s.id = b.cash_session_id
                WHERE s.status IN {_DONE}
                GROUP BY 1, 2
            ), stored AS ({expected_rows})
            SELECT COALESCE(booked.sid, stored.sid), COALESCE(booked.pt, stored.pt),
                   COALESCE(stored.total, 0), COALESCE(booked.total, 0)
            FROM booked FULL OUTER JOIN stored
              ON stored.sid = booked.sid AND stored.pt = booked.pt
            WHERE ROUND(COALESCE(stored.total, 0), 2) <> ROUND(COALESCE(booked.total, 0), 2)
            ORDER BY 1 LIMIT 50
            """,
        ),
        (
            "session_difference",
            "cash drawer session {0}: difference {1} but counted {2} minus expected {3}",
            f"""
            WITH counted AS ({sums.format("counted")}), expected AS ({sums.format("expected")})
            SELECT s.id, s.difference, COALESCE(c.total, 0), COALESCE(x.total, 0)
            FROM accounting_cashdrawersession s
            LEFT JOIN counted c ON c.sid = s.id LEFT JOIN expected x ON x.sid = s.id
            WHERE s.status = 'reconciled'
              AND (s.difference IS NULL OR ROUND(s.difference, 2)
                   <> ROUND(COALESCE(c.total, 0) - COALESCE(x.total, 0), 2))
            ORDER BY s.id LIMIT 50
            """,
        ),
        (
            "session_after_close",
            "cash drawer session {0}: entry {1} was booked into it after it closed",
            f"""
            SELECT s.id, e.id FROM accounting_entrybooking b
            JOIN accounting_cashdrawersession s ON s.id = b.cash_session_id
            JOIN fees_ledgerentry e ON e.id = b.entry_id
            WHERE s.status IN {_DONE} AND e.created_at > s.closed_at
            ORDER BY s.id, e.id LIMIT 50
            """,
        ),
    ]


AWARD_CHECKS: list[tuple[str, str, str]] = [
    (
        "award_student",
        "entry {0}: tied to student award {1} of student {2}, but the entry is student {3}'s",
        """
        SELECT e.id, a.id, a.student_id, e.student_id FROM accounting_entrybooking b
        JOIN fees_ledgerentry e ON e.id = b.entry_id
        JOIN accounting_studentaward a ON a.id = b.student_award_id
        JOIN accounting_enrollmentperiod p ON p.id = a.enrollment_period_id
        WHERE a.student_id <> e.student_id OR p.student_id <> a.student_id
        ORDER BY e.id LIMIT 50
        """,
    ),
]


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

    for name, template, sql in [
        *cashiering_checks(connection.vendor),
        *AWARD_CHECKS,
        *REFUND_CHECKS,
        *RECEIPT_CHECKS,
    ]:
        register_check(name, template, sql)
