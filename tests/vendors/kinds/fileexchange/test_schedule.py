"""The export schedule runs at 08:00 and 20:00 district time (issue 12, item 2), whatever
time zone beat itself would default to."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import PeriodicTask

from apps.vendors.schedules import schedule_name, schedules_sync
from tests.vendors.kinds.fileexchange.conftest import make_exchange

pytestmark = pytest.mark.django_db


def _next_run(task: PeriodicTask, now: dt.datetime) -> dt.datetime:
    """When beat fires `task` next after `now` (a stubbed clock, as beat reads it)."""
    schedule = task.schedule
    schedule.nowfun = lambda: now
    # Last run a minute ago: beat's estimate of the next one counts from there.
    return now + schedule.remaining_estimate(now - dt.timedelta(minutes=1))


@pytest.mark.parametrize("district", ["America/New_York", "America/Los_Angeles"])
def test_export_fees_runs_at_8_and_20_district_time(
    tmp_path: Path, libfine: Any, settings: Any, district: str
) -> None:
    settings.TIME_ZONE = district
    zone = ZoneInfo(district)
    integration = make_exchange(tmp_path, server=None, category=libfine)
    schedules_sync(integration=integration)
    task = PeriodicTask.objects.select_related("crontab").get(
        name=schedule_name(integration, "Export changed fees (file)")
    )
    assert str(task.crontab.timezone) == district
    # 07:30 district time, a winter day and a summer day: next is 08:00 there, then 20:00.
    for day in (dt.date(2026, 12, 1), dt.date(2026, 7, 1)):
        morning = dt.datetime.combine(day, dt.time(7, 30), tzinfo=zone)
        first = _next_run(task, morning).astimezone(zone)
        assert (first.date(), first.hour, first.minute) == (day, 8, 0)
        evening = dt.datetime.combine(day, dt.time(12, 0), tzinfo=zone)
        second = _next_run(task, evening).astimezone(zone)
        assert (second.date(), second.hour, second.minute) == (day, 20, 0)
