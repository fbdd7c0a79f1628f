"""docs/partner-api.md's fund-source and cashiering `curl` examples (marked
`<!-- expect (fund source): NNN -->`), run as written against a live server, with the
records they name made here and passed in the environment."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from apps.accounting.models import (
    Bank,
    BankAccount,
    CashDrawer,
    EnrollmentPeriod,
    StudentAcademicYear,
    StudentAward,
)
from apps.accounting.services.cashiering import session_close, session_open, session_reconcile
from apps.fees.selectors import ledger_report
from tests.factories import SchoolFactory, StaffFactory, StudentFactory

DOC = Path(settings.BASE_DIR) / "docs" / "partner-api.md"
EXAMPLE = re.compile(r"<!-- expect \(fund source\): (\d{3}) -->\s*```sh\n(.*?)```", re.S)


@pytest.mark.django_db(transaction=True)
def test_the_fund_source_and_cashiering_examples_answer_as_documented(
    api_key: str,
    api_user: Any,
    live_server: Any,
    student: Any,
    period: Any,
    academic_year: Any,
    year: Any,
    fund: Any,
    bank_account: Any,
) -> None:
    examples = EXAMPLE.findall(DOC.read_text())
    assert len(examples) >= 7
    api_user.user.groups.add(Group.objects.get(name="API - Student Accounts"))
    # A second school, with cashiering on, and the vendor's drawer and session there.
    cash_school = SchoolFactory(name="Washington Middle School", cashiering=True)
    cash_student = StudentFactory(school=cash_school)
    cash_period = EnrollmentPeriod.objects.create(
        student=cash_student, school=cash_school, start_date=dt.date(2026, 8, 1)
    )
    cash_year = StudentAcademicYear.objects.create(
        student=cash_student, enrollment_period=cash_period, academic_year=year, sequence=1
    )
    cash_bank = BankAccount.objects.create(
        bank=Bank.objects.create(school=cash_school, name="Riverside Savings"), name="Deposits"
    )
    supervisor = StaffFactory(username="admin-docs", groups=["District admin"])
    drawer = CashDrawer.objects.create(school=cash_school, name="Vendor", api_user=api_user)
    session = session_open(drawer=drawer, cashier=supervisor, api_user=api_user)
    old_drawer = CashDrawer.objects.create(school=cash_school, name="Old", api_user=api_user)
    old = session_open(drawer=old_drawer, cashier=supervisor, api_user=api_user)
    session_close(session=old, counted={}, user=supervisor)
    session_reconcile(session=old, user=supervisor, note="")
    env = {
        **os.environ,
        "BASE": live_server.url,
        "KEY": api_key,
        "STUDENT": student.student_number,
        "PERIOD": str(period.pk),
        "ACADEMIC_YEAR": str(academic_year.pk),
        "FUND": str(fund.pk),
        "BANK": str(bank_account.pk),
        "CASH_STUDENT": cash_student.student_number,
        "CASH_PERIOD": str(cash_period.pk),
        "CASH_ACADEMIC_YEAR": str(cash_year.pk),
        "CASH_BANK": str(cash_bank.pk),
        "DRAWER": str(drawer.pk),
        "SESSION": str(session.pk),
        "CASHIER": str(supervisor.pk),
        "OLD_DRAWER": str(old_drawer.pk),
        "RECONCILED": str(old.pk),
    }
    for expected, shell in examples:
        done = subprocess.run(  # noqa: S603
            ["/bin/bash", "-c", shell], env=env, capture_output=True, text=True, timeout=60
        )
        status_line = done.stdout.splitlines()[0] if done.stdout else done.stderr
        assert status_line.split()[1] == expected, (shell, done.stdout)
        assert "application/problem+json" in done.stdout or int(expected) < 400
        if expected == "400":  # the documented answer names every bad property at once
            detail = "These properties are not valid: AwardYear, FundSourceId, PaymentMode, "
            assert detail + "TransactionDate." in done.stdout
    # The documented outcome: one award for the two payments, the drawer's in the session.
    assert StudentAward.objects.filter(student=student).count() == 1
    assert session.bookings.count() == 2
    assert ledger_report().ok
