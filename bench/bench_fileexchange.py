"""The file-exchange benchmarks (issue 12), as result rows.

* `fileexchange.export_200k_s` (target 10 s): `export-fees` of 200,000 changed fees to one
  file over SFTP (pinned host key) to the test suite's SFTP server on loopback, control
  file and archive copy included, and the 200,000 exported versions recorded. Floor, in the
  same run: `fileexchange.export_200k_floor_s`, the raw upload of the same bytes to the same
  server; `fileexchange.export_200k_ratio` = real / floor.
* `fileexchange.import_100k_s` (target 30 s): `import-payments` of one result file of
  100,000 pay lines, every one applied through the one door;
  `fileexchange.import_100k_peak_mb` (target 300): the process's resident memory above
  where it started, sampled every 20 ms while the import runs.
* `fileexchange.reimport_100k_s` (target 10 s): the same file dropped again: 0 new entries.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from bench import Result, ratio, result, stopwatch
from bench.data import analyze, catalog, copy_charges, ensure_students, reset_ledger

EXPORT_N = 200_000
IMPORT_N = 100_000


class _PeakRSS:
    """Resident set size high-water mark of this process, sampled in a thread."""

    def __init__(self) -> None:
        self.before = self._rss()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def mb(self) -> float:
        return (self.peak - self.before) / (1024 * 1024)


def fileexchange_export_import() -> list[Result]:
    from apps.fees.models import LedgerEntry
    from apps.vendors.jobs import task_run
    from apps.vendors.kinds.fileexchange.layouts import RESULT_COLUMNS
    from apps.vendors.models import Integration, SyncedFee, TaskRun
    from apps.vendors.transfer import TransferTarget, upload_stream
    from tests.vendors.servers import PASSWORD, USERNAME, run_sftp_server

    reset_ledger()
    Integration.objects.filter(slug="fileexchange-bench").delete()
    cat = catalog()
    _school, students = ensure_students(EXPORT_N)
    fee_ids = copy_charges(students, catalog=cat)
    analyze("fees_fee", "fees_ledgerentry")
    with TemporaryDirectory(prefix="fx-bench-") as tmp, run_sftp_server(Path(tmp)) as server:
        integration = Integration(
            vendor_kind="fileexchange",
            slug="fileexchange-bench",
            name="Financials (bench)",
            enabled=True,
            service_url="http://127.0.0.1:8103/",
            timeout_seconds=60,
            import_after=dt.date(2000, 1, 1),
            options={
                "transport": "sftp",
                "host": server.host,
                "port": server.port,
                "host_key": server.host_key,
            },
        )
        integration.credentials = {"username": USERNAME, "password": PASSWORD}
        integration.save()
        integration.categories.set([cat.category])

        with stopwatch() as export:
            run = task_run(integration=integration, task="export-fees")
        assert run is not None and run.outcome == TaskRun.Outcome.OK, run and run.error
        assert run.counts["rows"] == EXPORT_N, run.counts
        assert SyncedFee.objects.filter(integration=integration).count() == EXPORT_N
        name = str(run.counts["file"])
        data = (Path(tmp) / "outbound" / name).read_bytes()
        target = TransferTarget(
            protocol="sftp",
            host=server.host,
            port=server.port,
            username=USERNAME,
            password=PASSWORD,
            directory="outbound",
            host_key=server.host_key,
            timeout=60,
        )
        blocks = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
        with stopwatch() as floor:
            upload_stream(target, "floor.csv", blocks)

        # A result file paying 100,000 of them, in full.
        from apps.fees.models import Fee

        refs = list(
            Fee.objects.filter(pk__in=fee_ids[:IMPORT_N]).values_list("reference", "amount")
        )
        lines = [",".join(RESULT_COLUMNS)]
        lines += [f"{ref},,pay,{amount},card,,PS{i:08d}," for i, (ref, amount) in enumerate(refs)]
        text = ("\r\n".join(lines) + "\r\n").encode()
        inbound = Path(tmp) / "inbound"
        inbound.mkdir(exist_ok=True)

        def drop() -> None:
            (inbound / "results.csv").write_bytes(text)
            (inbound / "results.csv.done").write_bytes(b"")

        drop()
        before = LedgerEntry.objects.count()
        with _PeakRSS() as memory, stopwatch() as imported:
            first = task_run(integration=integration, task="import-payments")
        assert first is not None and first.outcome == TaskRun.Outcome.OK, first and first.error
        assert first.counts["recorded"] == IMPORT_N, first.counts
        assert LedgerEntry.objects.count() == before + IMPORT_N

        drop()
        with stopwatch() as again:
            second = task_run(integration=integration, task="import-payments")
        assert second is not None and second.outcome == TaskRun.Outcome.OK
        assert second.counts["recorded"] == 0, second.counts
        assert second.counts["already_recorded"] == IMPORT_N, second.counts
        assert LedgerEntry.objects.count() == before + IMPORT_N
    Integration.objects.filter(pk=integration.pk).delete()
    reset_ledger()
    return [
        result("fileexchange.export_200k_s", export.seconds, "s", target=10, n=EXPORT_N),
        result("fileexchange.export_200k_floor_s", floor.seconds, "s", n=EXPORT_N),
        ratio("fileexchange.export_200k_ratio", export.seconds, floor.seconds, n=EXPORT_N),
        result("fileexchange.import_100k_s", imported.seconds, "s", target=30, n=IMPORT_N),
        result("fileexchange.import_100k_peak_mb", memory.mb, "MB", target=300, n=IMPORT_N),
        result("fileexchange.reimport_100k_s", again.seconds, "s", target=10, n=IMPORT_N),
    ]


BENCHMARKS = [fileexchange_export_import]


def run() -> list[Result]:
    return [row for bench in BENCHMARKS for row in bench()]
