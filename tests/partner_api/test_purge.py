"""The hourly purge of Idempotency-Key responses older than the kept window (at least
24 hours), run through Celery, with its run recorded on the integration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.fees.models import LedgerEntry
from apps.partner_api.models import IdempotencyRecord
from apps.partner_api.tasks import purge_idempotency_keys
from apps.vendors.models import TaskRun

from .conftest import PAYMENTS, payment

pytestmark = pytest.mark.django_db


def _age(key: str, hours: float) -> None:
    IdempotencyRecord.objects.filter(key=key).update(
        created_at=timezone.now() - timedelta(hours=hours)
    )


def test_old_keys_go_recent_stay_and_the_run_is_recorded(api, integration, student, settings):
    settings.FEESYNC_IDEMPOTENCY_HOURS = 48
    for key in ("old", "recent"):
        body = payment(student, "10.00", vid=f"V-{key}")
        assert api.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY=key).status_code == 201
    _age("old", 49)
    _age("recent", 47)

    purge_idempotency_keys.delay()

    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]
    run = TaskRun.objects.get(integration=integration, task="idempotency_purge")
    assert run.outcome == TaskRun.Outcome.OK and run.finished is not None
    assert run.counts == {"deleted": 1, "kept_hours": 48}
    # The recent key still replays the first response.
    again = api.post(
        PAYMENTS,
        payment(student, "10.00", vid="V-recent"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="recent",
    )
    assert again["Idempotent-Replayed"] == "true"


def test_keys_are_kept_at_least_24_hours_whatever_the_setting(api, integration, student, settings):
    settings.FEESYNC_IDEMPOTENCY_HOURS = 1
    body = payment(student, "10.00", vid="V-1")
    api.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    _age("k1", 23)
    purge_idempotency_keys.delay()
    assert IdempotencyRecord.objects.filter(key="k1").exists()
    assert TaskRun.objects.get(task="idempotency_purge").counts["kept_hours"] == 24


def test_a_retry_after_the_purge_is_still_recorded_once(api, integration, student):
    body = payment(student, "10.00", vid="V-late")
    first = api.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="late")
    _age("late", 24 * 30)
    purge_idempotency_keys.delay()
    assert not IdempotencyRecord.objects.filter(key="late").exists()

    again = api.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="late")
    assert again.status_code == 200 and again.json()["IsReplay"] is True
    assert (
        again.json()["StudentAccountTransactionId"] == first.json()["StudentAccountTransactionId"]
    )
    assert LedgerEntry.objects.filter(student=student, kind="payment").count() == 1
