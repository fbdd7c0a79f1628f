"""The export schedule runs at 08:00 and 20:00 district time (issue 12, item 2), whatever
time zone beat itself would default to."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import lxml.html
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


# --- staff change the schedule on the setup page (issue 12, items 1 and 2) ----------------------


def _tasks_form(client: Any, integration: Any, task: str, value: str) -> Any:
    from tests.vendors.setup_pages import setup_url

    page = client.get(setup_url(integration))
    doc = lxml.html.fromstring(page.content.decode())
    form = doc.xpath(f"//li[@id='task-{task}']//form[contains(@class,'feesync-task-times')]")
    assert form, f"no schedule form for {task}"
    values = dict(form[0].form_values())
    values["schedule"] = value
    return client.post(form[0].get("action"), values, follow=True)


def test_staff_change_the_export_times_and_the_polling_interval_on_the_setup_page(
    tmp_path: Path, libfine: Any, settings: Any, district_admin: Any
) -> None:
    from tests.admin_helpers import csrf_client
    from tests.vendors.setup_pages import section_text

    settings.TIME_ZONE = "America/New_York"
    zone = ZoneInfo("America/New_York")
    integration = make_exchange(tmp_path, server=None, category=libfine)
    schedules_sync(integration=integration)
    client = csrf_client(district_admin)

    page = _tasks_form(client, integration, "export-fees", "07:30, 19:30")
    text = section_text(page, "tasks")
    assert "“Export changed fees (file)” now runs: Every day at 07:30 and 19:30" in text
    export = PeriodicTask.objects.select_related("crontab").get(
        name=schedule_name(integration, "Export changed fees (file)")
    )
    assert (export.crontab.minute, export.crontab.hour) == ("30", "7,19")
    assert str(export.crontab.timezone) == "America/New_York"
    day = dt.date(2026, 12, 1)
    first = _next_run(export, dt.datetime.combine(day, dt.time(7, 0), tzinfo=zone))
    assert first.astimezone(zone).time() == dt.time(7, 30)

    page = _tasks_form(client, integration, "import-payments", "15")
    assert "“Import payment files” now runs: Every 15 minutes" in section_text(page, "tasks")
    poll = PeriodicTask.objects.select_related("interval").get(
        name=schedule_name(integration, "Import payment files")
    )
    assert (poll.interval.every, poll.interval.period) == (15, "minutes")
    # The change is audited on the integration.
    from auditlog.models import LogEntry

    changes = [e.changes_dict for e in LogEntry.objects.get_for_object(integration)]
    assert any("schedule of “Import payment files”" in c for c in changes)


@pytest.mark.parametrize(
    ("task", "typed", "words"),
    [
        ("export-fees", "25:00", "“25:00” is not a time of day"),
        ("export-fees", "8am", "“8am” is not a time of day"),
        ("export-fees", "08:00, 20:30", "The times must share their minutes"),
        ("export-fees", "", "Type at least one time"),
        ("import-payments", "0", "“0” is not a number of minutes from 1 to 1440"),
        ("import-payments", "half an hour", "“half an hour” is not a number of minutes"),
    ],
)
def test_a_bad_schedule_is_refused_in_words_and_nothing_changes(
    tmp_path: Path, libfine: Any, district_admin: Any, task: str, typed: str, words: str
) -> None:
    from tests.admin_helpers import csrf_client
    from tests.vendors.setup_pages import section_text

    integration = make_exchange(tmp_path, server=None, category=libfine)
    schedules_sync(integration=integration)
    before = {p.name: (p.crontab_id, p.interval_id) for p in PeriodicTask.objects.all()}
    page = _tasks_form(csrf_client(district_admin), integration, task, typed)
    text = section_text(page, "tasks")
    assert words in text and "Nothing changed." in text
    assert {p.name: (p.crontab_id, p.interval_id) for p in PeriodicTask.objects.all()} == before


def test_support_staff_cannot_change_a_schedule(
    tmp_path: Path, libfine: Any, support_user: Any
) -> None:
    from django.urls import reverse

    from tests.admin_helpers import csrf_client
    from tests.vendors.setup_pages import setup_url

    integration = make_exchange(tmp_path, server=None, category=libfine)
    schedules_sync(integration=integration)
    client = csrf_client(support_user)
    page = client.get(setup_url(integration))
    assert b"feesync-task-times" not in page.content
    url = reverse("admin:vendors_integration_section", args=[integration.pk, "task-times"])
    token = lxml.html.fromstring(page.content.decode()).xpath(
        "//input[@name='csrfmiddlewaretoken']/@value"
    )[0]
    answer = client.post(
        url, {"csrfmiddlewaretoken": token, "task": "import-payments", "schedule": "5"}
    )
    assert answer.status_code == 403
