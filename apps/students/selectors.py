"""Reads about students."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Student, StudentList


def student_list_students(*, student_list: StudentList) -> QuerySet[Student]:
    """The students a saved list names today (a dynamic list is evaluated now)."""
    if student_list.kind == StudentList.Kind.FIXED:
        return student_list.students.all()
    qs = Student.objects.all()
    if student_list.school_id:
        qs = qs.filter(school_id=student_list.school_id)
    if student_list.grade:
        qs = qs.filter(grade=student_list.grade)
    if student_list.activity_id:
        qs = qs.filter(activitymembership__activity_id=student_list.activity_id)
    if student_list.status == StudentList.Status.ACTIVE:
        qs = qs.filter(active=True)
    elif student_list.status == StudentList.Status.INACTIVE:
        qs = qs.filter(active=False)
    return qs
