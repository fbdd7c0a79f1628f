"""Pages that update themselves when a background pull lands (issue 11 item 15).

A parent's first page after signing in, and a student's page on the staff site, are built
after asking the vendors within a short deadline. A vendor that did not answer in time is
pulled in the background; the page then watches the students' money for a while (the
"watch window") and, when it changes, reloads its fee rows and balances in place and says
"Payments updated" (static/feesync/freshness.js).

What the page watches is when the students' money last changed (`money_changed_at`: the
newest ledger entry, fee change or fetched vendor or lunch balance), served by a small JSON
endpoint and read by the browser every couple of seconds, only during the window. The page
itself only carries the time it was built from, so watching costs its own queries nothing.
The window is a time, not a flag set by the pull: the pull runs in a Celery worker
(another process, another cache), and a window as long as the pull may take is all a page
needs to know.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import Max

from apps.fees.models import Fee, LedgerEntry

from .models import Integration, LunchBalance, StudentVendorBalance

#: Longest a page keeps watching, whatever the vendors' timeouts say.
WATCH_MAX_SECONDS = 120
#: How often the page asks (milliseconds); a small JSON answer of a few indexed sums.
POLL_INTERVAL_MS = 2000


def money_changed_at(*, student_ids: Sequence[int]) -> float | None:
    """When the students' money last changed, as their fee pages show it (a Unix time), or
    None when nothing was ever recorded: the newest ledger entry, fee change, and vendor or
    lunch balance fetched. A pull that finds nothing records nothing and leaves it as it
    was; one that refreshes a balance moves it (the page shows when balances were fetched)."""
    ids = list(student_ids)
    times = [
        Fee.objects.filter(student_id__in=ids).aggregate(t=Max("updated_at"))["t"],
        LedgerEntry.objects.filter(student_id__in=ids).aggregate(t=Max("created_at"))["t"],
        StudentVendorBalance.objects.filter(student_id__in=ids).aggregate(t=Max("fetched_at"))["t"],
        LunchBalance.objects.filter(student_id__in=ids).aggregate(t=Max("fetched_at"))["t"],
    ]
    found = [t.timestamp() for t in times if t is not None]
    return max(found) if found else None


def watch_seconds(integrations: Iterable[Integration]) -> int:
    """How long a page watches for the background pulls of `integrations`: each may wait
    its timeout, and retry once, after the worker picks it up; a few seconds for that."""
    longest = max((i.timeout_seconds for i in integrations), default=0)
    if not longest:
        return 0
    return min(WATCH_MAX_SECONDS, 2 * longest + 10)


def watch_until(integrations: Iterable[Integration]) -> float | None:
    """The end of the watch window (a Unix time), or None when nothing is pulled."""
    seconds = watch_seconds(integrations)
    return time.time() + seconds if seconds else None


def seconds_left(until: float | None) -> int:
    """What is left of a window, in whole seconds (0: over, or none)."""
    if not until:
        return 0
    return max(0, int(until - time.time()))


def watch_context(
    *, url: str, since: float, until: float | None, refresh: str
) -> dict[str, Any] | None:
    """What templates/common/_freshness.html needs to watch a page, or None outside a
    window. `since`: when the page began reading the money it shows (a change after it is
    new to the page); `refresh`: the CSS selectors of the parts swapped in."""
    left = seconds_left(until)
    if not left:
        return None
    return {
        "url": url,
        "since": f"{since:.6f}",
        "seconds": left,
        "interval": POLL_INTERVAL_MS,
        "refresh": refresh,
    }
