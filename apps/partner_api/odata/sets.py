"""The OData entity sets, one declaration each, and what an API user may see of each.

Scope (the rows an API user's integration may see; documented in docs/partner-api.md):

* Refunds: every refund not yet selected by anyone, and those the integration's own API
  users selected (and then paid); a refund another vendor selected is no longer offered to
  anyone else, so it is not shown either.
* BillingTransactionCodes: the integration's fee categories (none selected: all), the
  same codes it may post charges with.
* ScheduledDisbursements: installments of payment plans the integration's API users created
  or the district's staff created; never another vendor's plans.
* StudentAwards and Students: all of them, as part 1 lets a vendor post to any student by
  StudentId; only the names, grade and school, no contact data.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from apps.accounting.models import Refund, StudentAward
from apps.categories.models import FeeCategory
from apps.fees.models import ScheduledPayment
from apps.students.models import Student

from ..models import ApiUser
from .entities import EntitySet, Nav, Prop


def _own_api_users(api_user: ApiUser) -> list[int]:
    return list(
        ApiUser.objects.filter(integration_id=api_user.integration_id).values_list("pk", flat=True)
    )


class Refunds(EntitySet):
    name = "Refunds"
    entity_type = "Refund"
    model = Refund
    key = "RefundId"
    description = "Refunds owed to students: N not processed, S selected, P paid, V voided."
    properties = (
        Prop("RefundId", "Edm.Int32", "id"),
        Prop("StudentId", "Edm.String", "student__student_number", description="The student's id."),
        Prop("Amount", "Edm.Decimal", "amount"),
        Prop("DueDate", "Edm.Date", "due_date"),
        Prop("Status", "Edm.String", "status", description="N, S, P or V."),
        Prop("FundSourceId", "Edm.Int32", "fund_source_id", nullable=True),
        Prop("StudentAwardId", "Edm.Int32", "student_award_id", nullable=True),
        Prop("Reason", "Edm.String", "reason"),
        Prop(
            "StudentAccountTransactionId",
            "Edm.Int32",
            "entry_id",
            nullable=True,
            description="The refund entry on the card (P and V).",
        ),
        Prop("CreatedAt", "Edm.DateTimeOffset", "created_at"),
        Prop("UpdatedAt", "Edm.DateTimeOffset", "updated_at"),
    )
    navigations = (
        Nav("Student", "Students", "student", nullable=False),
        Nav("StudentAward", "StudentAwards", "student_award"),
    )

    @classmethod
    def scope(cls, queryset: QuerySet[Any], api_user: ApiUser) -> QuerySet[Any]:
        # A list of ids, not a join to the API users: the refunds query stays on its index.
        return queryset.filter(
            Q(selected_by__isnull=True) | Q(selected_by_id__in=_own_api_users(api_user))
        )


class BillingTransactionCodes(EntitySet):
    name = "BillingTransactionCodes"
    entity_type = "BillingTransactionCode"
    model = FeeCategory
    key = "BillingTransactionCodeId"
    description = "Billing transaction codes (FeeSync's fee categories) with usage and GL account."
    properties = (
        Prop("BillingTransactionCodeId", "Edm.String", "code"),
        Prop("Description", "Edm.String", "description"),
        Prop("IsActive", "Edm.Boolean", "active"),
        Prop(
            "Usage",
            "Edm.String",
            "usage",
            description="C charges on a student's card, M misc cash receipts, A both.",
        ),
        Prop("GLAccount", "Edm.String", "gl_account", description="The general-ledger account."),
    )

    @classmethod
    def scope(cls, queryset: QuerySet[Any], api_user: ApiUser) -> QuerySet[Any]:
        allowed = list(api_user.integration.categories.values_list("pk", flat=True))
        return queryset.filter(pk__in=allowed) if allowed else queryset


class ScheduledDisbursements(EntitySet):
    name = "ScheduledDisbursements"
    entity_type = "ScheduledDisbursement"
    model = ScheduledPayment
    key = "ScheduledDisbursementId"
    description = "Installments of students' payment plans: S scheduled, P paid, C cancelled."
    properties = (
        Prop("ScheduledDisbursementId", "Edm.Int32", "id"),
        Prop("PaymentPlanId", "Edm.Int32", "plan_id"),
        Prop("StudentId", "Edm.String", "plan__student__student_number"),
        Prop("Amount", "Edm.Decimal", "amount"),
        Prop("ExpectedDate", "Edm.Date", "expected_date"),
        Prop("Status", "Edm.String", "status", description="S, P or C."),
        Prop(
            "StudentAccountTransactionId",
            "Edm.Int32",
            "payment_id",
            nullable=True,
            description="The payment that paid it (P).",
        ),
        Prop("CreatedAt", "Edm.DateTimeOffset", "created_at"),
    )
    navigations = (Nav("Student", "Students", "plan__student", nullable=False),)

    @classmethod
    def scope(cls, queryset: QuerySet[Any], api_user: ApiUser) -> QuerySet[Any]:
        sources = [f"apiuser:{pk}" for pk in _own_api_users(api_user)]
        return queryset.filter(plan__external_source__in=[*sources, ""])


class StudentAwards(EntitySet):
    name = "StudentAwards"
    entity_type = "StudentAward"
    model = StudentAward
    key = "StudentAwardId"
    description = "A fund source's award to a student for an enrollment period and award year."
    properties = (
        Prop("StudentAwardId", "Edm.Int32", "id"),
        Prop("StudentId", "Edm.String", "student__student_number"),
        Prop("StudentEnrollmentPeriodId", "Edm.Int32", "enrollment_period_id"),
        Prop("FundSourceId", "Edm.Int32", "fund_source_id"),
        Prop("FundSourceCode", "Edm.String", "fund_source__code"),
        Prop("AwardYear", "Edm.String", "award_year", description="####-##, e.g. 2024-25."),
        Prop("CreatedAt", "Edm.DateTimeOffset", "created_at"),
    )
    navigations = (Nav("Student", "Students", "student", nullable=False),)


class Students(EntitySet):
    name = "Students"
    entity_type = "Student"
    model = Student
    key = "StudentId"
    description = "Students (no contact data)."
    properties = (
        Prop("StudentId", "Edm.String", "student_number", description="The district's student id."),
        Prop("FirstName", "Edm.String", "first_name"),
        Prop("LastName", "Edm.String", "last_name"),
        Prop("Grade", "Edm.String", "grade"),
        Prop("SchoolCode", "Edm.String", "school__code"),
        Prop("SchoolName", "Edm.String", "school__name"),
        Prop("IsActive", "Edm.Boolean", "active"),
        Prop("EnrollmentDate", "Edm.Date", "enrollment_date", nullable=True),
    )
