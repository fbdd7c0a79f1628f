"""A student enrolled at a school with a bank account, a fund source and an academic year,
and the partner-API clients of tests/partner_api (its fixtures, reused) with the
"API - Student Accounts" group too."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import Group

from apps.accounting.models import (
    AcademicYear,
    Bank,
    BankAccount,
    CashDrawer,
    EnrollmentPeriod,
    FundSource,
    StudentAcademicYear,
)
from tests.browser.conftest import artifacts, browser  # noqa: F401  (Chromium, screenshots)
from tests.factories import SchoolFactory, StaffFactory, StudentFactory
from tests.partner_api.conftest import (  # noqa: F401  (fixtures reused, not duplicated)
    api,
    api_key,
    api_user,
    basic_client,
    integration,
)

COMMAND = "/api/commands/StudentAccounts/StudentAccountTransaction/PostAccountTransactionPayment"


@pytest.fixture
def accounts_api(api: Any, api_user: Any) -> Any:  # noqa: F811 - the imported fixtures
    """The API client, its user also in "API - Student Accounts"."""
    api_user.user.groups.add(Group.objects.get(name="API - Student Accounts"))
    return api


@pytest.fixture
def school(db: Any) -> Any:
    return SchoolFactory(name="Jefferson High School")


@pytest.fixture
def student(school: Any) -> Any:
    return StudentFactory(school=school)


@pytest.fixture
def year(db: Any) -> AcademicYear:
    return AcademicYear.objects.create(
        code="2026-27", start_date=dt.date(2026, 8, 1), end_date=dt.date(2027, 7, 31)
    )


@pytest.fixture
def period(student: Any, school: Any) -> EnrollmentPeriod:
    return EnrollmentPeriod.objects.create(
        student=student, school=school, name="2026-27", start_date=dt.date(2026, 8, 1)
    )


@pytest.fixture
def academic_year(student: Any, period: EnrollmentPeriod, year: AcademicYear) -> Any:
    return StudentAcademicYear.objects.create(
        student=student, enrollment_period=period, academic_year=year, sequence=1
    )


@pytest.fixture
def fund(db: Any) -> FundSource:
    return FundSource.objects.create(code="PARENT", name="Parent payments")


@pytest.fixture
def bank_account(school: Any) -> BankAccount:
    bank = Bank.objects.create(school=school, name="First Riverside Bank")
    return BankAccount.objects.create(bank=bank, name="Operating", number_last4="4321")


@pytest.fixture
def drawer(school: Any) -> CashDrawer:
    return CashDrawer.objects.create(school=school, name="Front office")


def command(
    period: Any, academic_year: Any, fund: Any, bank_account: Any, **more: Any
) -> dict[str, Any]:
    """A valid PostAccountTransactionPayment payload (Anthology's base required fields)."""
    return {
        "AcademicYearSequence": academic_year.sequence,
        "AwardYear": "2026-27",
        "BankAccountId": bank_account.pk,
        "Description": "Parent payment",
        "FundSourceId": fund.pk,
        "PaymentMode": 2,
        "PaymentType": "C",
        "StudentAcademicYearId": academic_year.pk,
        "StudentEnrollmentPeriodId": period.pk,
        "StudentId": period.student.student_number,
        "TransactionAmount": "40.00",
        "TransactionDate": "2026-09-15T00:00:00",
        "IsNewPaymentSuccessful": 1,
        **more,
    }


@pytest.fixture
def office_clerk(db: object) -> object:
    """A business-office user who may do everything (the refund, receipt and close tests;
    the cashiering tests use the role-based `clerk` and `district_admin`)."""
    return StaffFactory(username="office-clerk", is_superuser=True)


@pytest.fixture(autouse=True)
def gl_export_dir(settings: object, tmp_path: object) -> object:
    """Each test's GL export files in a directory of its own."""
    settings.FEESYNC_GL_EXPORT_DIR = tmp_path / "gl"  # type: ignore[attr-defined,operator]
    return settings.FEESYNC_GL_EXPORT_DIR  # type: ignore[attr-defined]
