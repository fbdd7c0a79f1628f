"""`manage.py seed_demo`: a believable, truthful and idempotent demo district."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count, F, Model
from django.utils import timezone

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.fees.models import Allocation, Fee, FeeAssignment, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.students.management.commands.seed_demo import plan_district, school_year_start
from apps.students.models import (
    Activity,
    ActivityMembership,
    Guardian,
    School,
    Student,
    StudentList,
)

N = 60
COUNTED: list[type[Model]] = [
    School,
    Student,
    Guardian,
    Guardian.students.through,
    Activity,
    ActivityMembership,
    StudentList,
    FeeCategory,
    MerchantAccount,
    FeeAssignment,
    Fee,
    LedgerEntry,
    Allocation,
    get_user_model(),
]


def _seed(students: int = N) -> str:
    out = io.StringIO()
    call_command("seed_demo", students=students, stdout=out)
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in COUNTED}


@pytest.fixture
def seeded(db: None) -> str:
    return _seed()


def test_district_shape(seeded: str) -> None:
    assert Student.objects.count() == N
    assert set(School.objects.values_list("code", flat=True)) == {"LES", "WMS", "JHS"}
    assert {"ATH", "FIELDTRIP", "LIBFINE", "TEXTBOOK", "ACTIVITY", "TECH", "LUNCH"} <= set(
        FeeCategory.objects.values_list("code", flat=True)
    )
    assert {"MID-GEN-001", "MID-ATH-002"} <= set(
        MerchantAccount.objects.values_list("merchant_id", flat=True)
    )
    # Grades fit the schools.
    for code, grades in {
        "LES": {"K", "1", "2", "3", "4", "5"},
        "WMS": {"6", "7", "8"},
        "JHS": {"9", "10", "11", "12"},
    }.items():
        assert set(Student.objects.filter(school__code=code).values_list("grade", flat=True)) <= (
            grades
        )
    assert Student.objects.filter(active=False).exists()
    assert not Student.objects.filter(enrollment_date__isnull=True).exists()
    sport = Activity.objects.get(is_sport=True)
    club = Activity.objects.get(is_sport=False)
    assert sport.members.exists() and club.members.exists()
    # A dynamic list per school and one per activity.
    assert StudentList.objects.filter(kind="dynamic", activity__isnull=True, grade="").count() == 3
    assert StudentList.objects.filter(activity=sport).exists()
    assert StudentList.objects.filter(activity=club).exists()


def test_staff_logins_and_groups(seeded: str) -> None:
    users = get_user_model().objects
    for username, group in [
        ("admin", "District admin"),
        ("clerk", "Fees clerk"),
        ("support", "Support staff"),
    ]:
        user = users.get(username=username)
        assert user.is_staff and not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [group]
        assert user.check_password(settings.DEMO_PASSWORD)
        assert username in seeded
    assert users.get(username="admin").has_perm("fees.add_fee")
    assert not users.get(username="support").has_perm("fees.add_fee")
    assert "parent1" in seeded and settings.DEMO_PASSWORD in seeded


def test_each_parent_sees_only_their_own_children(seeded: str) -> None:
    plan = plan_district(N, year_start=school_year_start(timezone.localdate()))
    planned = {g.username: set(g.children) for g in plan.guardians}
    guardians = Guardian.objects.select_related("user").prefetch_related("students")
    assert guardians.count() == len(planned)
    for guardian in guardians:
        assert guardian.user.username.startswith("parent")
        assert not guardian.user.is_staff
        assert guardian.user.check_password(settings.DEMO_PASSWORD)
        children = {s.student_number for s in guardian.students.all()}
        assert children == planned[guardian.user.username]
        # Siblings share the parent's household: every child's guardians see the same kids.
        for student in guardian.students.all():
            for other in student.guardians.all():
                assert {s.student_number for s in other.students.all()} == children
    by_children = Guardian.objects.annotate(n=Count("students"))
    assert by_children.filter(n__gte=2).exists()
    assert Student.objects.annotate(n=Count("guardians")).filter(n__gte=2).exists()
    assert not Student.objects.annotate(n=Count("guardians")).filter(n=0).exists()


def test_fees_in_every_state_and_the_ledger_is_truthful(seeded: str) -> None:
    assert set(Fee.objects.values_list("status", flat=True)) == set(Fee.Status.values)
    partly_paid = Fee.objects.filter(
        status=Fee.Status.OPEN, balance__lt=F("amount"), entries__kind="payment"
    )
    assert partly_paid.exists()
    refunded = Fee.objects.filter(
        status=Fee.Status.OPEN, balance=F("amount"), entries__kind="refund"
    )
    assert refunded.exists()
    assert {"cash", "check", "card", "online"} <= set(
        LedgerEntry.objects.filter(kind="payment").values_list("method", flat=True)
    )
    kinds = set(LedgerEntry.objects.values_list("kind", flat=True))
    assert {"charge", "payment", "waiver", "void", "refund", "settlement"} <= kinds
    assert Fee.objects.filter(assignment__isnull=False).exists()  # list fees
    report = ledger_report()
    assert report.ok, report.breaches
    call_command("ledger_check", stdout=io.StringIO())  # exits non-zero on a breach


def test_running_twice_changes_nothing(seeded: str) -> None:
    before = _counts()
    _seed()
    assert _counts() == before
    assert ledger_report().ok


def test_more_students_later_extends_the_same_district(db: None) -> None:
    _seed(25)
    first = dict(Student.objects.values_list("student_number", "first_name"))
    _seed(N)
    after = dict(Student.objects.values_list("student_number", "first_name"))
    assert len(after) == N
    assert {k: after[k] for k in first} == first
    assert ledger_report().ok
