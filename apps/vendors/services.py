"""Writes about integrations: settings, credentials, test connections, task runs, schedules."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import engine
from .adapters import get_adapter_class
from .adapters.base import CheckResult, VendorError
from .models import Integration, LunchBalance, StudentVendorBalance, TaskRun


class IntegrationError(ValidationError):
    """A setup request FeeSync refuses, with the reason in plain words."""


# --- settings ---------------------------------------------------------------------------------


@transaction.atomic
def integration_set_credentials(*, integration: Integration, values: dict[str, str]) -> None:
    """Replace the secrets that were typed again; keep the others (secrets are write-only)."""
    current = integration.credentials
    for key, value in values.items():
        if value:
            current[key] = value
    integration.credentials = current
    integration.save(update_fields=["credentials_encrypted", "updated_at"])


@transaction.atomic
def integration_set_import_after(
    *, integration: Integration, import_after: date | None
) -> Integration:
    """Set the date from which fees sync. Vendors that ask for it (Community Pass) need both
    Test Pull and Test Push to have passed first; enforced here, not only in a form."""
    adapter_cls = get_adapter_class(integration.vendor_kind)
    if (
        import_after is not None
        and adapter_cls.requires_tests_before_import_date
        and not (integration.test_pull_ok and integration.test_push_ok)
    ):
        raise IntegrationError(
            f"{integration.vendor_name} requires both Test Pull and Test Push to pass before "
            "the import-after date can be set. Run the tests first."
        )
    integration.import_after = import_after
    integration.save(update_fields=["import_after", "updated_at"])
    return integration


def _check_detail(result: CheckResult) -> str:
    return f"{result.tried} — {result.answer} ({result.elapsed_ms} ms)"


def integration_test_connection(*, integration: Integration) -> tuple[CheckResult, CheckResult]:
    """Run Test Pull and Test Push and keep their results on the integration."""
    adapter = engine.adapter_for(integration)
    pull = adapter.test_pull()
    push = adapter.test_push()
    now = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(
        test_pull_ok=pull.ok,
        test_pull_at=now,
        test_pull_detail=_check_detail(pull),
        test_push_ok=push.ok,
        test_push_at=now,
        test_push_detail=_check_detail(push),
    )
    integration.refresh_from_db()
    return pull, push


# --- tasks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    name: str
    label: str
    run: Callable[[Integration], dict[str, Any]]
    needs: str = ""  # an adapter capability, if any
    nightly: bool = False
    default_schedule: str = ""  # crontab "m h dom mon dow", or "every N" (minutes)


def _get_payments(integration: Integration) -> dict[str, Any]:
    r = engine.payments_pull(integration=integration)
    return {
        "seen": r.seen,
        "recorded": r.recorded,
        "already_recorded": r.already_recorded,
        "unmatched": r.unmatched,
        "pages": r.pages,
    }


def _export_demographics(integration: Integration) -> dict[str, Any]:
    from .demographics import export_demographics
    from .transfer import TransferError, TransferTarget

    if not integration.transfer_protocol or not integration.transfer_host:
        raise VendorError("No demographics server is set up for this integration.", permanent=True)
    creds = integration.credentials
    target = TransferTarget(
        protocol=integration.transfer_protocol,
        host=integration.transfer_host,
        port=integration.transfer_port or (22 if integration.transfer_protocol == "sftp" else 21),
        username=creds.get("transfer_username", ""),
        password=creds.get("transfer_password", ""),
        directory=integration.transfer_directory or ".",
        host_key=integration.transfer_host_key,
        timeout=float(integration.timeout_seconds),
    )
    try:
        result = export_demographics(target=target)
    except TransferError as exc:
        raise VendorError(exc.message, permanent=exc.permanent) from exc
    return {"rows": result.rows, "bytes": result.bytes_sent, "file": result.remote_name}


def _sync_lunch(integration: Integration) -> dict[str, Any]:
    from apps.students.models import Student

    adapter = engine.adapter_for(integration)
    now = timezone.now()
    students = dict(Student.objects.filter(active=True).values_list("student_number", "pk"))
    numbers = list(students)
    stored = 0
    for start in range(0, len(numbers), 500):
        balances = adapter.get_lunch_balances(numbers[start : start + 500])
        LunchBalance.objects.bulk_create(
            [
                LunchBalance(
                    integration=integration, student_id=students[n], balance=b, fetched_at=now
                )
                for n, b in balances.items()
                if n in students
            ],
            update_conflicts=True,
            unique_fields=["integration", "student"],
            update_fields=["balance", "fetched_at"],
        )
        stored += len(balances)
    return {"students": len(numbers), "balances": stored}


def _get_balances(integration: Integration) -> dict[str, Any]:
    from apps.students.models import Student

    adapter = engine.adapter_for(integration)
    now = timezone.now()
    students = dict(Student.objects.values_list("student_number", "pk"))
    numbers = list(students)
    stored = 0
    for start in range(0, len(numbers), 500):
        rows = adapter.get_balances(numbers[start : start + 500])
        StudentVendorBalance.objects.bulk_create(
            [
                StudentVendorBalance(
                    integration=integration,
                    student_id=students[r.student_id],
                    balance=r.balance,
                    fetched_at=now,
                )
                for r in rows
                if r.student_id in students
            ],
            update_conflicts=True,
            unique_fields=["integration", "student"],
            update_fields=["balance", "fetched_at"],
        )
        stored += len(rows)
    return {"students": len(numbers), "balances": stored}


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            "send-fees",
            "Send fees (import to the vendor)",
            lambda i: engine.send_fees(integration=i),
            default_schedule="every 15",
        ),
        TaskSpec("get-payments", "Get payments", _get_payments, default_schedule="every 15"),
        TaskSpec(
            "validate",
            "Validate fees",
            lambda i: engine.validate(integration=i),
            nightly=True,
            default_schedule="30 1 * * *",
        ),
        TaskSpec(
            "export-demographics",
            "Demographics export",
            _export_demographics,
            needs="demographics",
            nightly=True,
            default_schedule="0 2 * * *",
        ),
        TaskSpec(
            "sync-lunch",
            "Lunch balance sync",
            _sync_lunch,
            needs="lunch",
            nightly=True,
            default_schedule="30 2 * * *",
        ),
        TaskSpec(
            "get-balances",
            "Get balances",
            _get_balances,
            needs="balances",
            default_schedule="every 60",
        ),
    ]
}


def tasks_for(integration: Integration) -> list[TaskSpec]:
    caps = get_adapter_class(integration.vendor_kind).capabilities
    return [t for t in TASKS.values() if not t.needs or t.needs in caps]


def task_run(
    *,
    integration: Integration,
    task: str,
    trigger: str = "manual",
    business_date: date | None = None,
) -> TaskRun | None:
    """Run one task now and record the run. A nightly run (`business_date` given) runs once
    per business date: a second one for the same date returns None without running."""
    spec = TASKS.get(task)
    if spec is None or spec not in tasks_for(integration):
        raise IntegrationError(f"{integration.vendor_name} has no task “{task}”.")
    try:
        with transaction.atomic():
            run = TaskRun.objects.create(
                integration=integration,
                task=task,
                trigger=trigger,
                business_date=business_date,
                started=timezone.now(),
            )
    except IntegrityError:
        return None
    started = time.monotonic()
    try:
        counts = spec.run(integration)
    except VendorError as exc:
        _finish(run, TaskRun.Outcome.FAILED, {}, exc.message, started)
    except Exception as exc:  # Recorded for staff, then re-raised for the worker's log.
        _finish(run, TaskRun.Outcome.FAILED, {}, f"{type(exc).__name__}: {exc}", started)
        run.error += "\n" + traceback.format_exc(limit=5)
        TaskRun.objects.filter(pk=run.pk).update(error=run.error)
        raise
    else:
        _finish(run, TaskRun.Outcome.OK, counts, "", started)
    run.refresh_from_db()
    return run


def _finish(run: TaskRun, outcome: str, counts: dict[str, Any], error: str, started: float) -> None:
    counts = {**counts, "seconds": round(time.monotonic() - started, 3)}
    TaskRun.objects.filter(pk=run.pk).update(
        outcome=outcome, counts=counts, error=error, finished=timezone.now()
    )


def pull_for_students(
    *,
    integration: Integration,
    student_numbers: list[str],
    trigger: str,
    budget_seconds: float | None = None,
) -> engine.PullReport | str:
    """A pull for some students (a clerk opening a fee page, a parent signing in).
    Returns the report, or the vendor's error in plain words (never raises VendorError)."""
    try:
        return engine.payments_pull(
            integration=integration, student_ids=student_numbers, budget_seconds=budget_seconds
        )
    except VendorError as exc:
        now = timezone.now()
        Integration.objects.filter(pk=integration.pk).update(
            last_error=exc.message, last_error_at=now
        )
        return exc.message


def pull_for_student_page(*, student: Any) -> list[tuple[int, str]]:
    """The pull when staff open a student's fees: every enabled integration, that student
    only, each within FEESYNC_STUDENT_PULL_BUDGET_SECONDS. Returns (message level, text)
    pairs for the page; never raises for a vendor's trouble."""
    from django.conf import settings
    from django.contrib import messages

    out: list[tuple[int, str]] = []
    budget = settings.FEESYNC_STUDENT_PULL_BUDGET_SECONDS
    for integration in Integration.objects.filter(enabled=True):
        result = pull_for_students(
            integration=integration,
            student_numbers=[student.student_number],
            trigger="fee page",
            budget_seconds=budget,
        )
        if isinstance(result, str):
            out.append(
                (
                    messages.WARNING,
                    f"Payments at {integration.vendor_name} could not be checked just now: "
                    f"{result} Payments made there may not show yet.",
                )
            )
        elif result.recorded:
            out.append(
                (
                    messages.INFO,
                    f"{result.recorded} payment{'s' if result.recorded != 1 else ''} "
                    f"brought in from {integration.vendor_name}.",
                )
            )
    return out


def integration_user_may_see_secrets(user: AbstractBaseUser) -> bool:
    return bool(user.has_perm("vendors.view_credentials"))
