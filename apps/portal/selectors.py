"""What a parent sees: their own students only, and those students' fees."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch

from apps.fees.models import Fee
from apps.students.models import Student


def portal_page_for(*, user: Any) -> dict[str, Any]:
    guardian = getattr(user, "guardian", None)
    if guardian is None or user.is_staff:
        return {"children": [], "total_due": 0}
    fees = Fee.objects.select_related("category").order_by("due_date", "fee_date", "pk")
    children = list(
        Student.objects.filter(guardians=guardian)
        .select_related("school")
        .prefetch_related(Prefetch("fees", queryset=fees))
        .order_by("first_name")
    )
    rows = []
    total = 0
    for child in children:
        open_fees = [f for f in child.fees.all() if f.status == Fee.Status.OPEN]
        history = [f for f in child.fees.all() if f.status != Fee.Status.OPEN]
        due = sum((f.balance for f in open_fees), 0)
        total += due
        rows.append({"student": child, "open_fees": open_fees, "history": history, "due": due})
    return {"children": rows, "total_due": total}
