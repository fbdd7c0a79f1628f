"""The schedules of every integration's tasks, declared here and synced into
django-celery-beat rows. Existing rows are never overwritten, so a change staff make in the
admin (a task switched off, another time) survives a deploy."""

from __future__ import annotations

import json
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
