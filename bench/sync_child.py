"""A fresh process for the sync benchmarks that measure memory (`bench/bench_sync.py`):
`python -m bench.sync_child validate INTEGRATION_ID` sets Django up against DATABASE_URL
(no migration: the parent did it), runs `engine.validate` once and prints one JSON line:
`{"seconds", "counts", "rss_before_kb", "rss_peak_kb"}`: the process's resident set just
before `validate` (Django set up, the engine imported) and its peak while `validate` ran.

The peak is the kernel's high-water mark of this process image (`VmHWM` in
/proc/self/status, reset just before `validate` through /proc/self/clear_refs). Not
`ru_maxrss`: on Linux that survives fork+exec, so a child of a big parent (the bench runner,
which holds the staged data) starts with the parent's peak and a delta would read 0.
Not a benchmark module itself (no `bench_` prefix).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path


def _status_kb(field: str) -> int:
    """A memory figure of /proc/self/status (VmRSS, VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    """Make VmHWM start again from the current RSS (Linux 4.0+; harmless elsewhere)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def validate(integration_id: int) -> dict[str, object]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    import django

    django.setup()
    from apps.vendors import engine
    from apps.vendors.models import Integration

    integration = Integration.objects.get(pk=integration_id)
    gc.collect()
    before = _status_kb("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    counts = engine.validate(integration=integration)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "counts": counts,
        "rss_before_kb": before,
        "rss_peak_kb": max(_status_kb("VmHWM"), before),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "validate":
        print("usage: python -m bench.sync_child validate INTEGRATION_ID", file=sys.stderr)
        return 2
    print(json.dumps(validate(int(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
