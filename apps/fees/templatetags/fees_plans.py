"""`{% upcoming_installments student as upcoming %}`: a student's scheduled plan payments,
for pages that show them (the parent portal's child section).

A page of several children asks once for all of them (the page's `page.children`), and
keeps the answer on the request, so the page's queries do not grow with its children."""

from __future__ import annotations

from typing import Any

from django import template

from apps.fees.models import ScheduledPayment
from apps.fees.selectors import upcoming_installments_of
from apps.students.models import Student

register = template.Library()

_CACHE = "_feesync_upcoming_installments"


@register.simple_tag(takes_context=True)
def upcoming_installments(context: Any, student: Student) -> list[ScheduledPayment]:
    request = getattr(context, "request", None)
    found: dict[int, list[ScheduledPayment]] | None = getattr(request, _CACHE, None)
    if found is None or student.pk not in found:
        children = getattr(context.get("page"), "children", None) or []
        ids = {getattr(c, "student", c).pk for c in children} | {student.pk}
        found = {**(found or {}), **upcoming_installments_of(student_ids=ids)}
        if request is not None:
            setattr(request, _CACHE, found)
    return found[student.pk]
