"""Celery tasks of the ledger: thin wrappers that take primary keys and call one service."""

from celery import shared_task

from .models import BulkJob
from .services import bulk_job_run


@shared_task(acks_late=True)
def run_bulk_job(job_id: int) -> None:
    job = BulkJob.objects.select_related("assignment__student_list").get(pk=job_id)
    bulk_job_run(job=job)
