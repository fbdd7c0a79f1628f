"""Pages that update themselves when a background pull lands (issue 11 item 15).

A parent's first page after signing in, and a student's page on the staff site, are built
after asking the vendors within a short deadline. A vendor that did not answer in time is
pulled in the background; the page then watches the students' money for a while (the
"watch window") and, when it changes, reloads its fee rows and balances in place and says
"Payments updated" (static/feesync/freshness.js).

What the page watches is a fingerprint of the money it shows (`money_stamp`), served by a
small JSON endpoint; it is read by the browser every couple of seconds, only during the
window. The window is a time, not a flag set by the pull: the pull runs in a Celery worker
(another process, another cache), and a window as long as the pull may take is all a page
needs to know.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import Count, Max, Sum

from apps.fees.models import Fee, LedgerEntry, StudentCredit

from .models import Integration, LunchBalance, StudentVendorBalance

#: Longest a page keeps watching, whatever the vendors' timeouts say.
WATCH_MAX_SECONDS = 120
#: How often the page asks (milliseconds); a small JSON answer of a few indexed sums.
POLL_INTERVAL_MS = 2000


def money_stamp(*, student_ids: Sequence[int]) -> str:
    """A short fingerprint of the students' money as their fee pages show it: their fees
    (count, versions, balances), ledger entries, credit, and the vendor and lunch balances.
    It changes when a pull records a payment or refreshes a balance to a new figure, and
    only then (a pull that found nothing leaves it as it was)."""
    ids = list(student_ids)
    fees = Fee.objects.filter(student_id__in=ids).aggregate(
        n=Count("id"), v=Sum("version"), b=Sum("balance")
    )
    entries = LedgerEntry.objects.filter(student_id__in=ids).aggregate(n=Count("id"), m=Max("id"))
    credit = StudentCredit.objects.filter(student_id__in=ids).aggregate(s=Sum("amount"))
    balances = sorted(
        (str(row[0]), str(row[1]), str(row[2]))
        for model in (StudentVendorBalance, LunchBalance)
        for row in model.objects.filter(student_id__in=ids).values_list(
            "integration_id", "student_id", "balance"
        )
    )
    parts: list[Any] = [
        fees["n"],
        fees["v"],
        fees["b"],
        entries["n"],
        entries["m"],
        credit["s"],
        balances,
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


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
    *, url: str, student_ids: Sequence[int], until: float | None, refresh: str
) -> dict[str, Any] | None:
    """What templates/common/_freshness.html needs to watch a page, or None outside a
    window. `refresh`: the CSS selectors of the parts swapped in when money changes."""
    left = seconds_left(until)
    if not left:
        return None
    return {
        "url": url,
        "stamp": money_stamp(student_ids=student_ids),
        "seconds": left,
        "interval": POLL_INTERVAL_MS,
        "refresh": refresh,
    }
