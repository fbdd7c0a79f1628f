"""What django-auditlog records: every change to fees, settings and students (who, when,
before, after).

Ledger entries and allocations are not registered: they are append-only and carry their
own author and time, so they are their own audit trail.
"""

from __future__ import annotations

from auditlog.registry import auditlog


def register_audited_models() -> None:
    """Called from `FeesConfig.ready()`; safe to call twice."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from apps.accounts.models import MerchantAccount
    from apps.categories.models import FeeCategory
    from apps.students.models import Activity, Guardian, Student, StudentList

    from .models import Fee, FeeAssignment, StudentCredit

    registrations: list[tuple[type, dict[str, object]]] = [
        # `updated_at` changes on every save and says nothing the log entry's time doesn't.
        (Fee, {"exclude_fields": ["updated_at"]}),
        (FeeAssignment, {}),
        (StudentCredit, {"exclude_fields": ["updated_at"]}),
        (FeeCategory, {}),
        (MerchantAccount, {}),
        (Student, {}),
        (Guardian, {"m2m_fields": {"students"}}),
        (StudentList, {"m2m_fields": {"students"}}),
        (Activity, {}),
        # A staff member's two-step sign-in turned on (created) and off (deleted); never the
        # secret key, nor the counters each sign-in moves.
        (TOTPDevice, {"include_fields": ["user", "name", "confirmed"]}),
    ]
    for model, options in registrations:
        if not auditlog.contains(model):
            auditlog.register(model, **options)
