"""seed_demo's business-office records for cashiering and payments to fund sources
(issue 14): the school year, every student's enrollment period and first academic year,
fund sources, a bank per school with a bank account per merchant account, a front-office
cash drawer per school, and a drawer per school set aside for the `partner-demo` vendor's
API user with an open session tied to it (the recommended setup), so that the vendor's
`PostAccountTransactionPayment` has everything it names. Cashiering stays off at every
school: the district turns it on per school in the admin.

Idempotent and set-wise: each record is found again by a stable key (year code, student,
fund code, bank name and school, account name, drawer name and school) and only what is
missing is created, with one `bulk_create` per table."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.contrib.auth.models import Group

from apps.accounts.models import MerchantAccount
from apps.partner_api.models import ApiUser
from apps.students.models import School, Student

from .models import (
    AcademicYear,
    Bank,
    BankAccount,
    CashDrawer,
    EnrollmentPeriod,
    FundSource,
    StudentAcademicYear,
)
from .services.cashiering import session_open

FUND_SOURCES = [
    ("FAMILY", "Family payments", "4100-FAM"),
    ("SCHOLAR", "District scholarship fund", "4200-SCH"),
    ("BOOSTER", "Booster club contributions", "4300-BST"),
]
BANK = "First Riverside Bank"
FRONT_OFFICE = "Front office"
VENDOR_DRAWER = "Partner API (demo)"
BATCH = 1000


def year_code(start: date) -> str:
    return f"{start.year}-{(start.year + 1) % 100:02d}"


def seed_business_office(
    *, year_start: date, schools: dict[str, School], funds: dict[str, MerchantAccount]
) -> dict[str, int]:
    """Create what is missing; returns how many of each were created."""
    made: dict[str, int] = {}
    code = year_code(year_start)
    year, _ = AcademicYear.objects.get_or_create(
        code=code,
        defaults={
            "name": f"School year {code}",
            "start_date": year_start,
            "end_date": year_start.replace(year=year_start.year + 1) - timedelta(days=1),
        },
    )
    enrolled = set(EnrollmentPeriod.objects.values_list("student_id", flat=True))
    periods = EnrollmentPeriod.objects.bulk_create(
        [
            EnrollmentPeriod(student_id=pk, school_id=school_id, name=code, start_date=year_start)
            for pk, school_id in Student.objects.values_list("pk", "school_id").order_by("pk")
            if pk not in enrolled
        ],
        batch_size=BATCH,
    )
    made["enrollment_periods"] = len(periods)
    with_year = set(StudentAcademicYear.objects.values_list("enrollment_period_id", flat=True))
    made["student_academic_years"] = len(
        StudentAcademicYear.objects.bulk_create(
            [
                StudentAcademicYear(
                    student_id=p.student_id, enrollment_period=p, academic_year=year, sequence=1
                )
                for p in EnrollmentPeriod.objects.exclude(pk__in=with_year).exclude(
                    student__academic_years__sequence=1
                )
            ],
            batch_size=BATCH,
        )
    )
    for fund_code, name, gl in FUND_SOURCES:
        FundSource.objects.get_or_create(code=fund_code, defaults={"name": name, "gl_account": gl})
    for school in schools.values():
        bank, _ = Bank.objects.get_or_create(school=school, name=BANK)
        for i, merchant in enumerate(sorted(funds.values(), key=lambda m: m.merchant_id)):
            BankAccount.objects.get_or_create(
                bank=bank,
                name=f"{merchant.name} deposits",
                defaults={
                    "merchant_account": merchant,
                    "number_last4": f"{4100 + 10 * i + len(school.code)}"[-4:],
                    "gl_account": f"1010-{merchant.merchant_id[-3:]}",
                },
            )
        CashDrawer.objects.get_or_create(school=school, name=FRONT_OFFICE)
    made["vendor_sessions"] = _vendor_drawers(schools)
    return made


def _vendor_drawers(schools: dict[str, School]) -> int:
    """A drawer per school set aside for partner-demo's API user, each with a session tied
    to it and opened once (a session staff close later is not reopened by a re-run)."""
    api_user: Any = (
        ApiUser.objects.select_related("user").filter(integration__slug="partner-demo").first()
    )
    if api_user is None:
        return 0
    # The commands (PostAccountTransactionPayment) and OData need the third API group.
    api_user.user.groups.add(Group.objects.get(name="API - Student Accounts"))
    opened = 0
    for school in schools.values():
        drawer, _ = CashDrawer.objects.get_or_create(
            school=school, name=VENDOR_DRAWER, defaults={"api_user": api_user}
        )
        if not drawer.sessions.exists():
            session_open(drawer=drawer, cashier=api_user.user, api_user=api_user)
            opened += 1
    return opened
