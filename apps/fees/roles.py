"""The staff groups of DESIGN.md ("Who may do what") and their permissions.

Synced after every `migrate` (and after the test runner's flushes, which send the same
signal), so the groups exist with exactly these permissions on every database:

* District admin: everything, integration credentials included.
* Fees clerk: fees, payments, waivers, students and lists; categories and merchant accounts
  read-only; of integrations only the money vendors reported for fees they do not manage
  (held movements), to apply or dismiss.
* Support staff: read-only on setup and on task runs (secrets stay masked), plus running
  test connections and tasks.
"""

from __future__ import annotations

from typing import Any

DISTRICT_ADMIN = "District admin"
FEES_CLERK = "Fees clerk"
SUPPORT_STAFF = "Support staff"

_LEDGER = ["fee", "ledgerentry", "allocation", "feeassignment", "bulkjob", "studentcredit"]
_STUDENTS = ["student", "guardian", "activity", "activitymembership", "studentlist", "school"]
_VENDORS_READ = [
    "integration",
    "taskrun",
    "outboxitem",
    "discrepancy",
    "syncedfee",
    "merchantaccountmapping",
    "studentvendorbalance",
    "lunchbalance",
    "heldmovement",
]

ROLES: dict[str, list[tuple[str, str]]] = {
    FEES_CLERK: (
        [("fees", f"{a}_{m}") for m in _LEDGER for a in ("view", "add", "change")]
        + [("students", f"{a}_{m}") for m in _STUDENTS for a in ("view", "add", "change")]
        + [("categories", "view_feecategory"), ("accounts", "view_merchantaccount")]
        # Money a vendor reported for a fee it does not manage: clerks apply or dismiss it.
        + [("vendors", "view_heldmovement"), ("vendors", "change_heldmovement")]
        # The portal's documents and activity sign-ups (the district admin sets the lockout).
        + [
            ("portal", f"{a}_{m}")
            for m in ("studentdocument", "activityoffer")
            for a in ("view", "add", "change")
        ]
        + [("portal", "view_documentdownload"), ("portal", "view_activitysignup")]
        # Cashiering (issue 14): clerks open, take payments in and close their drawer
        # sessions; reconciling is the supervisor's (the district admin's) alone.
        + [("accounting", "view_cashdrawer")]
        + [("accounting", f"{a}_cashdrawersession") for a in ("view", "add", "change")]
    ),
    SUPPORT_STAFF: (
        [("fees", f"view_{m}") for m in _LEDGER]
        + [("students", f"view_{m}") for m in ("student", "school", "studentlist")]
        + [("categories", "view_feecategory"), ("accounts", "view_merchantaccount")]
        + [("vendors", f"view_{m}") for m in _VENDORS_READ]
        + [("vendors", "run_integration_tasks")]
        + [
            ("portal", f"view_{m}")
            for m in (
                "studentdocument",
                "documentdownload",
                "activityoffer",
                "activitysignup",
                "portallockout",
            )
        ]
    ),
}


def can_post_money(user: Any) -> bool:
    """Fees clerks and district admins post money; support staff only look."""
    return bool(user.has_perm("fees.add_ledgerentry"))


def sync_staff_groups(using: str = "default", **kwargs: Any) -> None:
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission
    from django.db.models import Q

    # post_migrate reaches apps one by one; make sure every app's permissions exist first.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)

    admin, _ = Group.objects.get_or_create(name=DISTRICT_ADMIN)
    admin.permissions.set(Permission.objects.all())
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        query = Q(pk__in=[])
        for app_label, codename in perms:
            query |= Q(content_type__app_label=app_label, codename=codename)
        group.permissions.set(Permission.objects.filter(query))
