"""`{% upcoming_installments student as upcoming %}`: a student's scheduled plan payments,
for pages that show them (the parent portal's child section)."""

from __future__ import annotations

from django import template

from apps.fees.models import ScheduledPayment
from apps.fees.selectors import upcoming_installments as _upcoming
from apps.students.models import Student

register = template.Library()


@register.simple_tag
def upcoming_installments(student: Student) -> list[ScheduledPayment]:
    return _upcoming(student=student)
