"""Joining an activity brings its fees along, and nothing else."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.fees.models import BulkJob, Fee
from apps.fees.services import Origin, assignment_create, bulk_job_run, bulk_job_start
from apps.students.services import activity_join
from tests.factories import (
    ActivityFactory,
    CategoryFactory,
    MerchantAccountFactory,
    SchoolFactory,
    StudentFactory,
    StudentListFactory,
)

pytestmark = pytest.mark.django_db


def assign(student_list, description, amount="75.00"):
    assignment = assignment_create(
        student_list=student_list,
        category=CategoryFactory(code="ATH"),
        merchant_account=MerchantAccountFactory(),
        description=description,
        amount=amount,
        fee_date=dt.date(2026, 9, 1),
        origin=Origin(),
    )
    job = bulk_job_start(assignment=assignment, action=BulkJob.Action.ASSIGN, origin=Origin())
    bulk_job_run(job=job)
    return assignment


def test_a_student_joining_later_is_charged_the_activity_fee_only():
    school = SchoolFactory()
    soccer = ActivityFactory(name="Soccer")
    first = StudentFactory(school=school)
    activity_join(student=first, activity=soccer, origin=Origin())
    soccer_fee = assign(StudentListFactory(activity=soccer), "Soccer fee")
    grade_fee = assign(StudentListFactory(school=school, grade="5"), "Grade 5 trip")
    late = StudentFactory(school=school, grade="5")

    assert activity_join(student=late, activity=soccer, origin=Origin()) == 1
    assert list(Fee.objects.filter(student=late).values_list("description", flat=True)) == [
        "Soccer fee"
    ]
    assert Fee.objects.filter(assignment=grade_fee, student=late).count() == 0
    # Joining again charges nothing more.
    assert activity_join(student=late, activity=soccer, origin=Origin()) == 0
    assert Fee.objects.filter(assignment=soccer_fee).count() == 2


def test_an_activity_list_narrowed_by_grade_charges_only_matching_joiners():
    band = ActivityFactory(name="Band")
    activity_join(student=StudentFactory(grade="9"), activity=band, origin=Origin())
    assign(StudentListFactory(activity=band, grade="9"), "Band (high school)")
    eighth = StudentFactory(grade="8")
    ninth = StudentFactory(grade="9")
    assert activity_join(student=eighth, activity=band, origin=Origin()) == 0
    assert activity_join(student=ninth, activity=band, origin=Origin()) == 1


def test_running_a_bulk_job_twice_charges_each_student_once():
    students = [StudentFactory(grade="3") for _ in range(4)]
    student_list = StudentListFactory(grade="3")
    assignment = assign(student_list, "Art supplies", "12.00")
    job = bulk_job_start(assignment=assignment, action=BulkJob.Action.ASSIGN, origin=Origin())
    bulk_job_run(job=job)
    job.refresh_from_db()
    assert job.state == "done" and job.changed == 0 and job.total == 4
    assert Fee.objects.filter(assignment=assignment).count() == len(students)
