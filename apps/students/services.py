"""Writes about students: joining an activity (which brings the activity's fees along)."""

from __future__ import annotations

from django.db import transaction

from apps.fees.services import Origin, fees_follow_activity

from .models import Activity, ActivityMembership, Student


@transaction.atomic
def activity_join(*, student: Student, activity: Activity, origin: Origin) -> int:
    """Add a student to a sport or club. Fees already assigned to that activity's lists are
    charged to the student too (other list fees are not). Returns how many were charged."""
    _, created = ActivityMembership.objects.get_or_create(activity=activity, student=student)
    if not created:
        return 0
    return fees_follow_activity(student=student, activity_id=activity.pk, origin=origin)
