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


def register_ledger_checks() -> None:
    from apps.fees.selectors import register_check

    for name, template, sql in [*cashiering_checks(connection.vendor), *AWARD_CHECKS]:
        register_check(name, template, sql)
