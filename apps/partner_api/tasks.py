"""Celery tasks of the partner API. Thin: each calls one service."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True)
def purge_idempotency_keys() -> None:
    """Hourly (CELERY_BEAT_SCHEDULE): drop Idempotency-Key responses older than the kept
    window; safe to run twice (a second run finds nothing to delete)."""
    services.idempotency_purge()
