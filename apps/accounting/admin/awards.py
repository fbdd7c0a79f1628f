"""Admin pages: what a payment to a fund source names. Academic years, students'
enrollment periods and academic years, fund sources and banks with their bank accounts are
kept here by the district admin; student awards are created by the payments themselves
(`PostAccountTransactionPayment`) and shown read-only with what was paid to them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet, Sum
from django.http import HttpRequest

from apps.common.admin import FeeSyncMedia, NotFoundMixin, ReadOnlyMixin

from ..models import (
    AcademicYear,
    Bank,
    BankAccount,
    EnrollmentPeriod,
    FundSource,
    StudentAcademicYear,
    StudentAward,
)


class _Admin(NotFoundMixin, admin.ModelAdmin):  # type: ignore[type-arg]  # one base for all
    Media = FeeSyncMedia


@admin.register(AcademicYear)
class AcademicYearAdmin(_Admin):
    list_display = ["code", "name", "start_date", "end_date"]
    search_fields = ["code", "name"]


@admin.register(EnrollmentPeriod)
class EnrollmentPeriodAdmin(_Admin):
    list_display = ["student", "school", "name", "start_date", "end_date"]
    list_filter = ["school"]
    search_fields = ["student__student_number", "student__last_name", "name"]
    autocomplete_fields = ["student"]
    list_select_related = ["student", "school"]


@admin.register(StudentAcademicYear)
class StudentAcademicYearAdmin(_Admin):
    list_display = ["student", "sequence", "academic_year", "enrollment_period"]
    search_fields = ["student__student_number", "student__last_name"]
    autocomplete_fields = ["student", "enrollment_period"]
    list_select_related = ["student", "academic_year", "enrollment_period"]


@admin.register(FundSource)
class FundSourceAdmin(_Admin):
    list_display = ["code", "name", "gl_account", "active"]
    list_filter = ["active"]
    search_fields = ["code", "name"]


@admin.register(StudentAward)
class StudentAwardAdmin(ReadOnlyMixin, _Admin):
    """Created by the first payment to a fund source for the period and award year."""

    list_display = [
        "student",
        "fund_source",
        "award_year",
        "enrollment_period",
        "payments",
        "paid",
        "created_at",
    ]
    list_filter = ["fund_source", "award_year"]
    search_fields = ["student__student_number", "student__last_name"]
    list_select_related = ["student", "fund_source", "enrollment_period"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[StudentAward]:
        queryset: QuerySet[StudentAward] = super().get_queryset(request)
        return queryset.annotate(n=Count("bookings"), total=Sum("bookings__entry__amount"))

    @admin.display(description="payments", ordering="n")
    def payments(self, obj: Any) -> int:
        return int(obj.n)

    @admin.display(description="paid", ordering="total")
    def paid(self, obj: Any) -> str:
        return f"${obj.total or 0:,.2f}"


class BankAccountInline(admin.TabularInline[BankAccount, Bank]):
    model = BankAccount
    extra = 0
    fields = ["name", "number_last4", "merchant_account", "gl_account", "active"]


@admin.register(Bank)
class BankAdmin(_Admin):
    list_display = ["name", "school"]
    list_filter = ["school"]
    search_fields = ["name"]
    inlines = [BankAccountInline]


@admin.register(BankAccount)
class BankAccountAdmin(_Admin):
    list_display = ["name", "bank", "number_last4", "merchant_account", "gl_account", "active"]
    list_filter = ["active", "bank__school"]
    search_fields = ["name", "bank__name", "number_last4"]
    list_select_related = ["bank", "bank__school", "merchant_account"]
