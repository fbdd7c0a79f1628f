"""How the staff pages of an integration say things: dates, counts, durations, schedules,
Test Pull / Test Push results and task runs, in words a fees clerk reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format
from django_celery_beat.models import PeriodicTask

from .models import TaskRun


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return date_format(timezone.localtime(value), "DATETIME_FORMAT")


def long_date(day: date | None) -> str:
    return f"{day:%B} {day.day}, {day.year}" if day else ""


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 90:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs} s"


def in_words(delta: timedelta) -> str:
    """ "in 14 minutes", "in 3 hours" — for the next run of a task."""
    seconds = int(delta.total_seconds())
    if seconds <= 60:
        return "due now"
    minutes = seconds // 60
    if minutes < 90:
        return f"in {plural(minutes, 'minute')}"
    hours = round(minutes / 60)
    if hours < 36:
        return f"in {plural(hours, 'hour')}"
    return f"in {plural(round(hours / 24), 'day')}"


@dataclass(frozen=True)
class CheckShown:
    """A stored Test Pull / Test Push result, split back into its parts for the page."""

    ok: bool | None
    at: datetime | None
    tried: str
    answer: str
    elapsed: str


_DETAIL = re.compile(r"^(?P<tried>.*?) — (?P<answer>.*) \((?P<ms>\d+) ms\)$", re.S)


def check_shown(ok: bool | None, at: datetime | None, detail: str) -> CheckShown:
    match = _DETAIL.match(detail or "")
    if match:
        return CheckShown(
            ok, at, match["tried"], match["answer"], duration(int(match["ms"]) / 1000)
        )
    return CheckShown(ok, at, "", detail, "")


def counts_text(counts: dict[str, Any]) -> str:
    parts = [
        f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')} {v}"
        for k, v in counts.items()
        if k != "seconds"
    ]
    return " · ".join(parts) or "—"


WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def schedule_text(periodic: PeriodicTask | None, default: str = "") -> str:
    """A beat schedule in words: "Every 15 minutes", "Every day at 01:30 (America/New_York)"."""
    if periodic is None:
        return f"Not scheduled (default: {default})" if default else "Not scheduled"
    if periodic.interval_id:
        interval = periodic.interval
        unit = interval.period.rstrip("s")
        if interval.every == 1:
            return f"Every {unit}"
        return f"Every {interval.every} {interval.period}"
    if periodic.crontab_id:
        c = periodic.crontab
        hours = c.hour.split(",")
        if (
            c.minute.isdigit()
            and all(h.isdigit() for h in hours)
            and c.day_of_month == "*"
            and c.month_of_year == "*"
        ):
            # "0 8,20 * * *": "08:00 and 20:00" (the file exchange's export, twice a day).
            times = [f"{int(h):02d}:{int(c.minute):02d}" for h in hours]
            listed = times[0] if len(times) == 1 else ", ".join(times[:-1]) + " and " + times[-1]
            at = f"{listed} ({c.timezone})"
            if c.day_of_week == "*":
                return f"Every day at {at}"
            if c.day_of_week.isdigit() and int(c.day_of_week) < 7:
                return f"Every {WEEKDAYS[int(c.day_of_week)]} at {at}"
        return c.human_readable
    return str(periodic.schedule)


def next_run(periodic: PeriodicTask | None) -> tuple[datetime | None, str]:
    """When beat will next run the task, from its schedule and its last run."""
    if periodic is None or not periodic.enabled:
        return None, "Off"
    try:
        schedule = periodic.schedule
        now = timezone.now()
        remaining = schedule.remaining_estimate(periodic.last_run_at or now)
    except Exception:  # an unusual hand-made schedule: say so rather than fail the page
        return None, "See the schedule"
    at = timezone.now() + remaining
    return at, f"{when(at)} ({in_words(remaining)})"


#: The colour of each outcome (a flag class), beside its words.
OUTCOME_FLAGS: dict[str, str] = {
    TaskRun.Outcome.OK: "ok",
    TaskRun.Outcome.PARTLY: "warn",
    TaskRun.Outcome.FAILED: "bad",
    TaskRun.Outcome.RUNNING: "none",
}


@dataclass(frozen=True)
class RunShown:
    started: str
    took: str
    trigger: str
    outcome: str
    outcome_code: str
    counts: str
    error: str
    flag: str = "none"
    #: The first errors of a run, one line each (a partly failed run has several).
    errors: tuple[str, ...] = ()


def outcome_words(run: TaskRun) -> str:
    """ "Succeeded", "Failed", or "Partly failed (2 of 12 failed)" with the run's counts."""
    words = run.get_outcome_display()
    if run.outcome != TaskRun.Outcome.PARTLY:
        return words
    from .jobs import TASKS  # the task's declared failure counts; jobs imports models too

    spec = TASKS.get(run.task)
    counts = run.counts or {}
    if spec is None:
        return words

    def total(keys: tuple[str, ...]) -> int:
        return sum(v for k in keys if isinstance(v := counts.get(k, 0), int))

    failed, done = total(spec.failures), total(spec.successes)
    return f"{words} ({failed:,} of {failed + done:,} failed)"


def run_shown(run: TaskRun) -> RunShown:
    took = duration((run.finished - run.started).total_seconds()) if run.finished else "running"
    lines = tuple(line for line in (run.error or "").splitlines() if line.strip())
    # A crash keeps its traceback after the message: only the message is for staff.
    errors = lines[:1] if run.outcome == TaskRun.Outcome.FAILED else lines[:3]
    return RunShown(
        started=when(run.started),
        took=took,
        trigger=run.trigger,
        outcome=outcome_words(run),
        outcome_code=run.outcome,
        counts=counts_text(run.counts or {}),
        error=lines[0] if lines else "",
        flag=OUTCOME_FLAGS.get(run.outcome, "none"),
        errors=errors,
    )


def option_shown(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value) if value not in (None, "") else "—"


def value_shown(value: Any) -> str:
    return "—" if value in (None, "None", "") else str(value)
