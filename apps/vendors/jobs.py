"""The integration tasks: what each one is, what it needs of the vendor, its default
schedule, and its body; and running one and recording the run for the staff task
dashboard (start, end, counts, error).

The Celery tasks (`apps.vendors.tasks`) and the "Run now" button call `task_run`; the
schedules (`apps.vendors.schedules`) are made from `TASKS`. An integration offers the tasks
whose capability its kind has (`tasks_for`).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from celery import current_app
from django.conf import settings
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.students.models import Student

from . import engine, files
from .demographics import export_demographics
from .errors import IntegrationError
from .kinds.base import Capability, VendorError
from .models import Integration, LunchBalance, StudentVendorBalance, TaskRun
from .transfer import Protocol, TransferError, TransferTarget

#: What a task's body reports for the run (kept in `TaskRun.counts`, shown on the dashboard):
#: mostly counts, sometimes a name (the demographics file sent).
Counts = Mapping[str, int | str]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    label: str
    run: Callable[[Integration], Counts]
    needs: Capability  # what the integration's kind must be able to do to offer it
    nightly: bool = False
    default_schedule: str = ""  # crontab "m h dom mon dow", or "every N" (minutes)
    #: The counts that are items the run failed on, and those it did: a run with failures
    #: is "partly failed" when some items went through, "failed" when none did.
    failures: tuple[str, ...] = ()
    successes: tuple[str, ...] = ()


#: The key of a body's counts holding its first errors in words (kept as the run's error).
ERRORS = "errors"


def outcome_of(spec: TaskSpec, counts: Counts) -> str:
    """Succeeded, partly failed or failed, from what the body counted."""

    def total(keys: tuple[str, ...]) -> int:
        return sum(v for k in keys if isinstance(v := counts.get(k, 0), int))

    if not total(spec.failures):
        return TaskRun.Outcome.OK
    return TaskRun.Outcome.PARTLY if total(spec.successes) else TaskRun.Outcome.FAILED


def _get_payments(integration: Integration) -> dict[str, int | str]:
    r = engine.payments_pull(integration=integration)
    counts: dict[str, int | str] = {
        "seen": r.seen,
        "recorded": r.recorded,
        "already_recorded": r.already_recorded,
        "unmatched": r.unmatched,
        "held": r.held,
        "pages": r.pages,
    }
    if r.errors:
        counts[ERRORS] = "\n".join(r.errors)
    return counts


#: The stored protocol as the transfer layer's type (anything else: no server set up).
PROTOCOLS: dict[str, Protocol] = {"ftp": "ftp", "ftps": "ftps", "sftp": "sftp"}


def _export_demographics(integration: Integration) -> dict[str, int | str]:
    protocol = PROTOCOLS.get(integration.transfer_protocol)
    if protocol is None or not integration.transfer_host:
        raise VendorError("No demographics server is set up for this integration.", permanent=True)
    creds = integration.credentials
    target = TransferTarget(
        protocol=protocol,
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


def _sync_lunch(integration: Integration) -> dict[str, int]:
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


def _get_balances(integration: Integration) -> dict[str, int]:
    return balances_refresh(integration=integration)


def balances_refresh(
    *, integration: Integration, student_numbers: list[str] | None = None
) -> dict[str, int]:
    """Fetch and store the whole vendor-account balance per student (all, or some)."""
    adapter = engine.adapter_for(integration)
    now = timezone.now()
    qs = Student.objects.all()
    if student_numbers is not None:
        qs = qs.filter(student_number__in=student_numbers)
    students = dict(qs.values_list("student_number", "pk"))
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
            needs=Capability.SEND,
            default_schedule="every 15",
            failures=("failed", "rejected"),
            successes=("acknowledged",),
        ),
        TaskSpec(
            "get-payments",
            "Get payments",
            _get_payments,
            needs=Capability.PULL,
            default_schedule="every 15",
            failures=("unmatched",),
            successes=("recorded", "already_recorded", "held"),
        ),
        TaskSpec(
            "validate",
            "Validate fees",
            lambda i: engine.validate(integration=i),
            needs=Capability.VALIDATE,
            nightly=True,
            default_schedule="30 1 * * *",
        ),
        TaskSpec(
            "export-demographics",
            "Demographics export",
            _export_demographics,
            needs=Capability.DEMOGRAPHICS,
            nightly=True,
            default_schedule="0 2 * * *",
        ),
        TaskSpec(
            "sync-lunch",
            "Lunch balance sync",
            _sync_lunch,
            needs=Capability.LUNCH,
            nightly=True,
            default_schedule="30 2 * * *",
        ),
        # The file exchange's (apps.vendors.files). Export twice a day, 08:00 and 20:00
        # district time (the beat schedule runs in settings.TIME_ZONE).
        TaskSpec(
            "export-fees",
            "Export changed fees (file)",
            lambda i: files.fees_export(integration=i),
            needs=Capability.FILE_EXPORT,
            default_schedule="0 8,20 * * *",
        ),
        TaskSpec(
            "export-all-fees",
            "Export every open fee (full file)",
            lambda i: files.fees_export(integration=i, full=True),
            needs=Capability.FILE_EXPORT,
        ),
        TaskSpec(
            "import-payments",
            "Import payment files",
            lambda i: files.payments_import(integration=i),
            needs=Capability.FILE_IMPORT,
            default_schedule="every 30",
        ),
        TaskSpec(
            "validate-exports",
            "Check every change was exported",
            lambda i: files.exports_validate(integration=i),
            needs=Capability.FILE_EXPORT,
            nightly=True,
            default_schedule="45 1 * * *",
        ),
        TaskSpec(
            "get-balances",
            "Get balances",
            _get_balances,
            needs=Capability.BALANCES,
            default_schedule="every 60",
        ),
    ]
}


def prerequisite_missing(integration: Integration, task: str) -> str:
    """Why a task must not run for this integration now, in words for the setup page, or
    "" when it may. Each of these tasks only makes sense while a setting asks for it; the
    schedule follows (`schedules.schedules_apply_prerequisites`) and `task_run` refuses."""
    if task == "export-demographics" and not (
        integration.transfer_protocol in PROTOCOLS and integration.transfer_host.strip()
    ):
        return "Off until a demographics server is set up (in Connection and credentials)."
    if task == "sync-lunch" and not integration.sync_lunch_balance:
        return "Off while “Sync lunch balance” is not checked (in Parent options)."
    if task == "get-balances" and not (
        integration.show_vendor_balance or integration.lock_portal_on_balance
    ):
        return (
            f"Off while the {integration.vendor_name} balance is neither shown to parents nor "
            "used to lock the portal (in Parent options)."
        )
    return ""


def tasks_for(integration: Integration) -> list[TaskSpec]:
    """The tasks the integration's kind can do, in `TASKS` order."""
    caps = integration.kind.capabilities
    return [t for t in TASKS.values() if t.needs in caps]


def task_run(
    *,
    integration: Integration,
    task: str,
    trigger: str = "manual",
    business_date: date | None = None,
) -> TaskRun | None:
    """Run one task now and record the run. A nightly run (`business_date` given) runs once
    per business date: a second one for the same date returns None without running. So
    does a task whose prerequisite is missing (`prerequisite_missing`): a beat row switched
    on by hand, or a run queued before the setting changed, never runs it."""
    spec = TASKS.get(task)
    if spec is None or spec not in tasks_for(integration):
        raise IntegrationError(f"{integration.vendor_name} has no task “{task}”.")
    if prerequisite_missing(integration, task):
        return None
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
        counts = dict(counts)
        errors = str(counts.pop(ERRORS, ""))
        _finish(run, outcome_of(spec, counts), counts, errors, started)
    run.refresh_from_db()
    return run


def _finish(run: TaskRun, outcome: str, counts: Counts, error: str, started: float) -> None:
    stored = {**counts, "seconds": round(time.monotonic() - started, 3)}
    TaskRun.objects.filter(pk=run.pk).update(
        outcome=outcome, counts=stored, error=error, finished=timezone.now()
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


@dataclass(frozen=True)
class SignInPull:
    background: list[Integration]  # still to pull (or refresh balances) in the background
    unchecked: list[str]  # vendors whose payments could not be checked before the page


def pull_at_parent_sign_in(*, student_numbers: list[str]) -> SignInPull:
    """A parent is signing in: their children's payments from every enabled vendor at once,
    within FEESYNC_PARENT_SIGN_IN_DEADLINE_SECONDS (at most 1 s), before the first page is
    built, so a payment made at the vendor a minute ago is on it. Returns the integrations
    that still need the background pull: those that did not answer in time or failed (the
    page then says their payments may not show yet), and those that also report balances
    (the balances are refreshed in the background). Never raises for a vendor's trouble."""
    seconds = float(settings.FEESYNC_PARENT_SIGN_IN_DEADLINE_SECONDS)
    enabled = list(Integration.objects.filter(enabled=True))
    pulling = [i for i in enabled if Capability.PULL in i.kind.capabilities]
    answered: set[int] = set()
    if pulling and student_numbers and seconds > 0:
        for pull in engine.payments_pull_within(
            integrations=pulling, student_ids=student_numbers, seconds=seconds
        ):
            if not pull.late and not pull.error:
                answered.add(pull.integration.pk)
    return SignInPull(
        background=[
            i
            for i in enabled
            if i.pk not in answered or i.show_vendor_balance or i.lock_portal_on_balance
        ],
        unchecked=sorted({i.vendor_name for i in pulling if i.pk not in answered}),
    )


@dataclass(frozen=True)
class StudentPagePull:
    notes: list[tuple[int, str]]  # (message level, text) for the page
    background: list[Integration]  # pulled (or read) in the background: the page watches


def pull_for_student_page(*, student: Student) -> list[tuple[int, str]]:
    """The notes of `student_page_pull` (what the page says about each vendor)."""
    return student_page_pull(student=student).notes


def student_page_pull(*, student: Student) -> StudentPagePull:
    """The pull when staff open a student's fees: every enabled integration at once, that
    student only, all within FEESYNC_STUDENT_PAGE_DEADLINE_SECONDS however many vendors
    are slow. A vendor that did not answer in time is asked again in the background, and
    the page updates itself when that lands (apps/vendors/freshness.py). Returns one note
    for each vendor that failed or was late, and the integrations pulled in the background;
    never raises for a vendor's trouble."""
    out: list[tuple[int, str]] = []
    seconds = float(settings.FEESYNC_STUDENT_PAGE_DEADLINE_SECONDS)
    enabled = list(Integration.objects.filter(enabled=True))
    files_read = [i for i in enabled if Capability.FILE_IMPORT in i.kind.capabilities]
    out.extend(_file_imports_queued(files_read))
    background = list(files_read)
    integrations = [i for i in enabled if Capability.PULL in i.kind.capabilities]
    if not integrations:
        return StudentPagePull(out, background)
    for pull in engine.payments_pull_within(
        integrations=integrations, student_ids=[student.student_number], seconds=seconds
    ):
        vendor = pull.integration.vendor_name
        if pull.late:
            again = _pull_again_in_background(pull.integration, student)
            if again:
                background.append(pull.integration)
            out.append(
                (
                    messages.WARNING,
                    f"Payments at {vendor} could not be checked within {seconds:g} "
                    f"second{'s' if seconds != 1 else ''}; payments made there may not show "
                    "yet. "
                    + (
                        "FeeSync is asking again in the background: this page updates "
                        "itself when they come in."
                        if again
                        else "They are brought in by the next check."
                    ),
                )
            )
        elif pull.error:
            out.append(
                (
                    messages.WARNING,
                    f"Payments at {vendor} could not be checked just now: "
                    f"{pull.error} Payments made there may not show yet.",
                )
            )
        elif pull.report and pull.report.recorded:
            n = pull.report.recorded
            text = f"{n} payment{'s' if n != 1 else ''} brought in from {vendor}."
            out.append((messages.INFO, text))
    return StudentPagePull(out, background)


def _pull_again_in_background(integration: Integration, student: Student) -> bool:
    """Queue the student's pull from a vendor that was late for the page. Not where tasks
    run inline (eager Celery, with no worker): there it would hold the page up for the very
    vendor it could not wait for; the next check brings the payments in."""
    if current_app.conf.task_always_eager:
        return False
    signature = current_app.signature(
        "apps.vendors.tasks.pull_payments_for_students",
        args=[integration.pk, [student.student_number], "student page"],
    )
    transaction.on_commit(signature.delay)
    return True


def _file_imports_queued(integrations: list[Integration]) -> list[tuple[int, str]]:
    """A file exchange has no per-student question to ask: its import reads whole files.
    A staff member opening a student's fees queues one in the background instead of
    holding the page up for it."""
    out: list[tuple[int, str]] = []
    for integration in integrations:
        signature = current_app.signature(
            "apps.vendors.tasks.run_integration_task",
            args=[integration.pk, "import-payments"],
            kwargs={"trigger": "student page"},
        )
        transaction.on_commit(signature.delay)
        out.append(
            (
                messages.INFO,
                f"{integration.vendor_name}'s payment files are being read in the background; "
                "this page updates itself with what they bring in.",
            )
        )
    return out
