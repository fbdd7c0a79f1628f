"""Roster imports as background jobs: read the file and build its preview, then (once a
district admin confirms) apply it with its progress recorded on the `RosterImport` row.

The same pattern as the fees' bulk jobs (apps/fees/services/bulk.py): a row holds the
state, a thin Celery task queued on commit does the work, the page reloads itself."""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from .formats import RosterUnreadable, read_roster
from .models import RosterImport
from .services import GuardBlocks, roster_apply, roster_plan

PREVIEW_TASK = "apps.roster.tasks.roster_preview"
APPLY_TASK = "apps.roster.tasks.roster_apply"


def _queue(task: str, import_id: int) -> None:
    transaction.on_commit(lambda: current_app.signature(task, args=(import_id,)).delay())


def roster_import_start(
    *, content: bytes, file_name: str, source: str, user: Any = None, background: bool = True
) -> RosterImport:
    """Keep an uploaded (or fetched) roster and build its preview (in the background)."""
    job = RosterImport.objects.create(
        content=content, file_name=file_name[:255], source=source, started_by=user
    )
    if background:
        _queue(PREVIEW_TASK, job.pk)
    else:
        roster_import_preview(job=job)
    return job


def _plan(job: RosterImport) -> Any:
    roster = read_roster(data=bytes(job.content), name=job.file_name)
    return roster_plan(roster=roster)


def roster_import_preview(*, job: RosterImport) -> RosterImport:
    """Read the file and record what applying it would do (nothing is written but that)."""
    try:
        plan = _plan(job)
    except RosterUnreadable as exc:
        RosterImport.objects.filter(pk=job.pk).update(
            state=RosterImport.State.UNREADABLE, error=str(exc), finished_at=timezone.now()
        )
    else:
        preview = plan.preview()
        state = RosterImport.State.HELD if plan.guard_blocks else RosterImport.State.READY
        RosterImport.objects.filter(pk=job.pk).update(state=state, preview=preview, error="")
    job.refresh_from_db()
    return job


def roster_import_confirm(
    *, job: RosterImport, user: Any = None, allow_deactivate: bool = False, background: bool = True
) -> RosterImport:
    """Staff confirmed the preview: apply it. Only a ready (or held, with the override)
    import can be confirmed, once: a conditional UPDATE claims it."""
    states = [RosterImport.State.READY]
    if allow_deactivate:
        states.append(RosterImport.State.HELD)
    claimed = RosterImport.objects.filter(pk=job.pk, state__in=states).update(
        state=RosterImport.State.APPLYING,
        confirmed_by=user,
        confirmed_at=timezone.now(),
        allow_deactivate=allow_deactivate,
    )
    job.refresh_from_db()
    if claimed:
        if background:
            _queue(APPLY_TASK, job.pk)
        else:
            roster_import_apply(job=job)
            job.refresh_from_db()
    return job


def roster_import_apply(*, job: RosterImport) -> RosterImport:
    """Apply a confirmed import. The file is read and compared again (the database may have
    moved since the preview), the guard checked again, then written with progress."""
    if job.state != RosterImport.State.APPLYING:
        return job

    def progress(done: int, total: int) -> None:
        RosterImport.objects.filter(pk=job.pk).update(done=done, total=total)

    try:
        plan = _plan(job)
        applied = roster_apply(plan=plan, allow_deactivate=job.allow_deactivate, progress=progress)
    except (RosterUnreadable, GuardBlocks) as exc:
        RosterImport.objects.filter(pk=job.pk).update(
            state=RosterImport.State.HELD
            if isinstance(exc, GuardBlocks)
            else RosterImport.State.UNREADABLE,
            error=str(exc),
            finished_at=timezone.now(),
        )
    except Exception as exc:
        RosterImport.objects.filter(pk=job.pk).update(
            state=RosterImport.State.FAILED, error=str(exc), finished_at=timezone.now()
        )
        raise
    else:
        RosterImport.objects.filter(pk=job.pk).update(
            state=RosterImport.State.DONE,
            result={
                "counts": applied.counts,
                "accounts_created": applied.accounts_created,
                "emails_changed": applied.emails_changed,
                "notes": applied.notes[:200],
                "refused": plan.preview()["refused"],
            },
            finished_at=timezone.now(),
        )
    job.refresh_from_db()
    return job
