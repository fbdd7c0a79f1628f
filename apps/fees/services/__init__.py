"""Every write to the ledger goes through this package (DESIGN.md: "Only the services of
apps/fees write ledger rows").

- `ledger`: the core postings on one fee (charge, change, payment, waiver, void, refund,
  reversal) and the `fee_changed` signal the sync engine listens to;
- `bulk`: fees for lists of students and the background bulk jobs;
- `outside`: the one door for money from outside FeeSync (`movements_record`);
- `credit`: the student's credit (money taken beyond what a fee owed): apply, refund,
  auto-apply.

Import from here: `from apps.fees.services import payment_take`.
"""

from ..movements import MovementKind
from .bulk import (
    assignment_create,
    bulk_job_run,
    bulk_job_start,
    fees_create_bulk,
    fees_follow_activity,
    fees_student_renamed,
    fees_void_bulk,
    student_list_from_assignment,
    unpaid_fees,
)
from .credit import (
    CreditAlreadyApplied,
    credit_apply,
    credit_auto_apply,
    credit_refund,
    credit_refund_void,
    student_credit,
)
from .ledger import (
    LedgerError,
    Origin,
    credit_entries,
    credit_kind_totals,
    credit_reverse,
    date_in_window,
    fee_change,
    fee_changed,
    fee_create,
    fee_void,
    fee_waive,
    payment_refund,
    payment_take,
    to_money,
)
from .outside import (
    Movement,
    MovementOutcome,
    MovementSource,
    OutcomeStatus,
    movement_credit,
    movement_record,
    movements_record,
)

__all__ = [
    "CreditAlreadyApplied",
    "LedgerError",
    "Movement",
    "MovementKind",
    "MovementOutcome",
    "MovementSource",
    "Origin",
    "OutcomeStatus",
    "assignment_create",
    "bulk_job_run",
    "bulk_job_start",
    "credit_apply",
    "credit_auto_apply",
    "credit_entries",
    "credit_kind_totals",
    "credit_refund",
    "credit_refund_void",
    "credit_reverse",
    "date_in_window",
    "fee_change",
    "fee_changed",
    "fee_create",
    "fee_void",
    "fee_waive",
    "fees_create_bulk",
    "fees_follow_activity",
    "fees_student_renamed",
    "fees_void_bulk",
    "movement_credit",
    "movement_record",
    "movements_record",
    "payment_refund",
    "payment_take",
    "student_credit",
    "student_list_from_assignment",
    "to_money",
    "unpaid_fees",
]
