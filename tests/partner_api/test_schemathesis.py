"""Schemathesis over the whole partner API, signed in with a valid application key, against
a live server: no 5xx, and every response matches the schema (status, content type, body).

Each operation's cases are drawn with Hypothesis from Schemathesis' strategy for it (its
pytest plugin does not run under this pytest yet)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.fees.selectors import ledger_report
from tests.factories import StudentFactory


def odata_rows(api_user: Any) -> None:
    """Something for each OData feed to return (and so for the schema to check): a refund
    with its award, a billing code, a plan's installment; the API user may query them."""
    from datetime import date
    from decimal import Decimal

    from django.contrib.auth.models import Group

    from apps.accounting.models import EnrollmentPeriod, FundSource, Refund, StudentAward
    from apps.fees.models import PaymentPlan, ScheduledPayment
    from tests.factories import CategoryFactory

    api_user.user.groups.add(Group.objects.get(name="API - Student Accounts"))
    student = StudentFactory(student_number="200")
    period = EnrollmentPeriod.objects.create(
        student=student, school=student.school, start_date=date(2025, 9, 1)
    )
    award = StudentAward.objects.create(
        student=student,
        enrollment_period=period,
        fund_source=FundSource.objects.create(code="PELL", name="Pell grant"),
        award_year="2025-26",
    )
    Refund.objects.create(
        student=student, student_award=award, amount=Decimal("12.50"), due_date=date(2025, 10, 1)
    )
    CategoryFactory(code="ATH", usage="A", gl_account="4100")
    plan = PaymentPlan.objects.create(
        student=student, external_source=api_user.external_source, total=Decimal("10.00")
    )
    ScheduledPayment.objects.create(
        plan=plan, amount=Decimal("10.00"), expected_date=date(2025, 10, 1)
    )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.django_db(transaction=True)
def test_the_api_never_fails_and_keeps_to_its_schema(
    api_key: str, api_user: Any, live_server: Any
) -> None:
    from django.contrib.auth.models import Group

    StudentFactory(student_number="100")
    # Every section's operations, the commands' (StudentAccounts.*) included.
    api_user.user.groups.add(Group.objects.get(name="API - Student Accounts"))
    odata_rows(api_user)
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {operation.path for operation in operations}
    assert "/api/student-accounting/ledger-payment-transactions" in paths
    assert (
        "/api/commands/StudentAccounts/StudentAccountTransaction/PostAccountTransactionPayment"
        in paths
    )
    assert {"/api/odata/", "/api/odata/$metadata", "/api/odata/Refunds"} <= paths
    assert {
        "/api/student-accounting/scheduled-refunds-status",
        "/api/student-accounting/ledger-scheduled-refund-transactions",
        "/api/student-accounting/ledger-refund-transactions",
        "/api/student-accounting/misc-cash-receipts",
    } <= paths
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            response = case.call(
                base_url=live_server.url, headers={"Authorization": f"Api-Key {api_key}"}
            )
            calls.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        run()
    assert len(calls) >= len(operations) * 20
    assert ledger_report().ok
