"""The simulation's clock: what `django.utils.timezone.now()` answers in this process.

Every service reads the time through `timezone.now()` / `timezone.localdate()`, so patching
that one function moves the district's day for the staff, vendor-pull and API operations
the simulator runs here. The worker keeps real time; the simulated clock therefore never
runs ahead of the real one (a change stamped in the future would look not yet due to the
worker's sweeper), and it starts on an evening before one of the district's two
daylight-saving changes of 2026, so that a run crosses midnight and the change."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from unittest import mock
from zoneinfo import ZoneInfo

from django.conf import settings

#: The evenings before the district's 2026 daylight-saving changes (US rules).
DST_EVES = (dt.date(2026, 3, 7), dt.date(2026, 10, 31))


class SimClock:
    def __init__(self, start: dt.datetime) -> None:
        self.zone = ZoneInfo(settings.TIME_ZONE)
        self.current = start.astimezone(dt.UTC)
        self.jumps = 0

    @classmethod
    def on_dst_eve(cls, index: int) -> SimClock:
        day = DST_EVES[index % len(DST_EVES)]
        zone = ZoneInfo(settings.TIME_ZONE)
        return cls(dt.datetime.combine(day, dt.time(21, 0), tzinfo=zone))

    def now(self) -> dt.datetime:
        return self.current

    def local(self) -> dt.datetime:
        return self.current.astimezone(self.zone)

    def _ceiling(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

    def advance(self, seconds: float) -> None:
        self.current = min(self.current + dt.timedelta(seconds=seconds), self._ceiling())

    def to_local_time(self, when: dt.time) -> None:
        """Jump forward to the next `when` of the district's day (a jump across midnight
        is to 23:59:50, a few steps before it)."""
        local = self.local()
        target = dt.datetime.combine(local.date(), when, tzinfo=self.zone)
        if target <= local:
            target = dt.datetime.combine(local.date() + dt.timedelta(days=1), when, self.zone)
        self.jumps += 1
        self.current = min(target.astimezone(dt.UTC), self._ceiling())

    @contextlib.contextmanager
    def installed(self) -> Iterator[SimClock]:
        with mock.patch("django.utils.timezone.now", self.now):
            yield self
