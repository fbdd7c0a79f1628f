"""Student awards: a fund source's award to a student for an enrollment period and award
year, what a payment to a fund source (Anthology's unscheduled payment) is tied to.

The award for (enrollment period, fund source, award year) is created by the first payment
that needs it and reused by every later one. Two payments racing for the same award are
settled by the unique constraint `student_award_once`: the loser's insert fails in its own
savepoint and it reads the winner's row."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from ..models import EnrollmentPeriod, FundSource, StudentAcademicYear, StudentAward

AWARD_YEAR_RE = re.compile(r"^(\d{4})-(\d{2})$")


def award_year_problem(value: str) -> str:
    """Why `value` is not an award year (`####-##`, the second year the one after the
    first: 2024-25), or "" when it is one."""
    match = AWARD_YEAR_RE.match(value or "")
    if match is None:
        return f"AwardYear “{value}” is not an award year: write it ####-##, e.g. 2024-25."
    first, second = int(match[1]), int(match[2])
    if (first + 1) % 100 != second:
        return (
            f"AwardYear “{value}” is not an award year: the second year must follow the first "
            f"(e.g. {first}-{(first + 1) % 100:02d})."
        )
    return ""


def award_get_or_create(
    *,
    enrollment_period: EnrollmentPeriod,
    fund_source: FundSource,
    award_year: str,
    student_academic_year: StudentAcademicYear | None = None,
) -> tuple[StudentAward, bool]:
    """The award for (enrollment period, fund source, award year), created if there is none
    (associated with `student_academic_year`, as Anthology's). Returns (award, created)."""
    key = {
        "enrollment_period": enrollment_period,
        "fund_source": fund_source,
        "award_year": award_year,
    }
    found = StudentAward.objects.filter(**key).first()
    if found is not None:
        return found, False
    try:
        with transaction.atomic():  # a savepoint: losing the race must not end the caller's
            return (
                StudentAward.objects.create(
                    student_id=enrollment_period.student_id,
                    student_academic_year=student_academic_year,
                    **key,
                ),
                True,
            )
    except IntegrityError:
        # Another payment created it between our read and our insert (it has committed: a
        # conflicting insert waits for the other transaction to end).
        return StudentAward.objects.get(**key), False
