"""The schedules of every integration's tasks, declared here and synced into
django-celery-beat rows. Existing rows are never overwritten, so a change staff make in the
admin (a task switched off, another time) survives a deploy."""

from __future__ import annotations

import json
import re
from zoneinfo import ZoneInfo

from django.conf import settings
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from .jobs import prerequisite_missing, tasks_for
from .models import Integration

TASK_PATH = "apps.vendors.tasks.run_integration_task"


#: Marks, in a beat row's description, a schedule FeeSync switched off because the task's
#: prerequisite is missing (so that it switches it on again, and only that one, once the
#: prerequisite is back; a schedule staff switched off stays off).
OFF_MARK = "— switched off by FeeSync: "


def schedules_apply_prerequisites(*, integration: Integration) -> int:
    """Switch off the schedules of tasks whose prerequisite is missing, and back on those
    FeeSync switched off once it is there again. Called whenever an integration is saved.
    Returns how many rows changed."""
    changed = 0
    rows = {p.name: p for p in periodic_tasks_of(integration)}
    for spec in tasks_for(integration):
        row = rows.get(schedule_name(integration, spec.label))
        if row is None:
            continue
        missing = prerequisite_missing(integration, spec.name)
        base = row.description.split(f" {OFF_MARK}")[0]
        if missing and row.enabled:
            row.enabled = False
            row.description = f"{base} {OFF_MARK}{missing}"
        elif not missing and OFF_MARK in row.description:
            row.enabled = True
            row.description = base
        else:
            continue
        row.save()  # save(), not update(): beat notices changes through it
        changed += 1
    return changed


def district_timezone() -> ZoneInfo:
    """The district's time zone (settings.TIME_ZONE), in which every schedule is read."""
    return ZoneInfo(settings.TIME_ZONE)


def schedule_name(integration: Integration, label: str) -> str:
    return f"{integration.slug}: {label}"


def schedules_sync(*, integration: Integration | None = None) -> int:
    """Create the beat rows that are missing. Returns how many were created."""
    created = 0
    integrations = [integration] if integration else Integration.objects.all()
    for integ in integrations:
        for spec in tasks_for(integ):
            if not spec.default_schedule:  # on demand only (a full export file)
                continue
            name = schedule_name(integ, spec.label)
            if PeriodicTask.objects.filter(name=name).exists():
                continue
            fields: dict[str, object] = {}
            if spec.default_schedule.startswith("every "):
                minutes = int(spec.default_schedule.split()[1])
                fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                    every=minutes, period=IntervalSchedule.MINUTES
                )
            else:
                minute, hour, dom, month, dow = spec.default_schedule.split()
                fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
                    minute=minute,
                    hour=hour,
                    day_of_month=dom,
                    month_of_year=month,
                    day_of_week=dow,
                    # "08:00 and 20:00" are district times: a crontab left to beat's default
                    # zone (UTC unless the Celery app says otherwise) fires hours off.
                    timezone=district_timezone(),
                )
            missing = prerequisite_missing(integ, spec.name)
            PeriodicTask.objects.create(
                name=name,
                task=TASK_PATH,
                enabled=not missing,
                kwargs=json.dumps(
                    {"integration_id": integ.pk, "task": spec.name, "nightly": spec.nightly}
                ),
                description=f"{spec.label} for {integ.name}"
                + (f" {OFF_MARK}{missing}" if missing else ""),
                **fields,
            )
            created += 1
    return created


def periodic_tasks_of(integration: Integration) -> list[PeriodicTask]:
    prefix = f"{integration.slug}: "
    return list(
        PeriodicTask.objects.filter(name__startswith=prefix).select_related("interval", "crontab")
    )


#: The longest gap staff may set between two runs of an interval task: a day.
MAX_EVERY_MINUTES = 1440


def schedule_form_value(periodic: PeriodicTask | None) -> tuple[str, str]:
    """(kind, value) of a schedule as the setup page lets staff change it: ("interval",
    "30") for every 30 minutes, ("times", "08:00, 20:00") for runs at set district times
    each day (or on a weekday), ("", "") for a schedule made by hand in the admin (the
    setup page shows it but leaves changing it there)."""
    if periodic is None:
        return "", ""
    if periodic.interval_id:
        interval = periodic.interval
        if interval.period == IntervalSchedule.MINUTES:
            return "interval", str(interval.every)
        return "", ""
    if periodic.crontab_id:
        c = periodic.crontab
        hours = c.hour.split(",")
        if (
            c.minute.isdigit()
            and all(h.isdigit() for h in hours)
            and c.day_of_month == "*"
            and c.month_of_year == "*"
        ):
            return "times", ", ".join(f"{int(h):02d}:{int(c.minute):02d}" for h in hours)
    return "", ""


def parse_every(text: str) -> int:
    """Minutes between runs, typed; ValueError in words."""
    value = text.strip().lower().removeprefix("every").removesuffix("minutes").strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_EVERY_MINUTES:
        raise ValueError(
            f"“{text.strip()}” is not a number of minutes from 1 to {MAX_EVERY_MINUTES} (e.g. 30)."
        )
    return int(value)


def parse_times(text: str) -> tuple[int, list[int]]:
    """(minute, hours) of daily run times typed as "08:00, 20:00"; ValueError in words. One
    beat crontab holds them, so the times share their minutes."""
    parts = [p for p in re.split(r"[,;\s]+|\band\b", text.strip()) if p]
    if not parts:
        raise ValueError("Type at least one time, e.g. 08:00, 20:00.")
    minutes: set[int] = set()
    hours: list[int] = []
    for part in parts:
        m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?", part)
        if not m or int(m.group(1)) > 23 or int(m.group(2) or 0) > 59:
            raise ValueError(
                f"“{part}” is not a time of day: use 24-hour times such as 08:00 or 20:30."
            )
        minutes.add(int(m.group(2) or 0))
        hours.append(int(m.group(1)))
    if len(minutes) > 1:
        raise ValueError(
            "The times must share their minutes (08:00 and 20:00, or 07:30 and 19:30): "
            f"{', '.join(parts)} do not."
        )
    if len(set(hours)) != len(hours):
        raise ValueError("A time is listed twice.")
    return minutes.pop(), sorted(hours)
