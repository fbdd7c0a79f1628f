"""Celery tasks of the roster import: thin wrappers that take primary keys."""

from celery import shared_task

from .invitations import invitations_run
from .jobs import roster_import_apply, roster_import_preview
from .models import InvitationBatch, RosterImport
from .nightly import roster_fetch_nightly


@shared_task(acks_late=True, name="apps.roster.tasks.roster_preview")
def roster_preview(import_id: int) -> None:
    roster_import_preview(job=RosterImport.objects.get(pk=import_id))


@shared_task(acks_late=True, name="apps.roster.tasks.roster_apply")
def roster_apply(import_id: int) -> None:
    roster_import_apply(job=RosterImport.objects.get(pk=import_id))


@shared_task(acks_late=True, name="apps.roster.tasks.send_invitations")
def send_invitations(batch_id: int) -> None:
    invitations_run(batch=InvitationBatch.objects.get(pk=batch_id))


@shared_task(name="apps.roster.tasks.roster_nightly")
def roster_nightly() -> None:
    roster_fetch_nightly()
