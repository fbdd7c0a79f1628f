"""The sync engine's benchmarks (DESIGN.md, "The sync engine" and "Benchmarks"), for every
vendor that has a sandbox (`apps.vendors.registry.sandboxes()`) and an adapter. Each runs
against the bench database, the vendor's sandbox on loopback (a thread of this process)
and, where the engine's worker is what is measured, one real Celery worker (a subprocess
`celery -A config worker -B`, two pool processes, Redis broker `BENCH_BROKER_URL`, default
redis://127.0.0.1:6379/14, settings `config.settings.local` with DJANGO_DEBUG off).

Per vendor (the vendor kind prefixes every name):

* `push_latency_p50_ms` (target 150) / `push_latency_p99_ms` (target 1000): 500 fees made
  one at a time by `fee_create`, each in its own transaction, one every 40 ms, with an
  enabled integration; latency is from the commit (an on_commit hook registered before
  the engine's) to the sandbox's own record of the upsert (`received_at`, read once at
  the end). Floor `push_floor_ms`: the median bare round trip of the adapter's Test Push
  (TestConnection / ping) to the same sandbox; `push_latency_p50_ratio`.
* `backlog_50k_drain_s` (target 60): 50,000 in-scope fees queued in the outbox (by
  `outbox_enqueue`, as the fee_changed signal does) while the vendor is down and the
  integration paused; timed from "the vendor is back" (faults ok, integration enabled,
  delivery triggered) until the outbox is empty; then the sandbox must hold exactly the
  50,000 fees. Floor `backlog_50k_floor_s`: the same 50,000 records pushed straight through
  the adapter in its batches (no database), into an emptied sandbox.
* `pull_100k_s` (target 60): 100,000 payments at the vendor (one per fee) pulled and
  recorded by `engine.payments_pull` (nightly: from the stored cursor); 100,000 ledger
  entries with the integration's external_source and `ledger_report().ok` are asserted.
  `repull_100k_s` (target 20): the same pull again with `from_start=True`, adding nothing.
  Floor `pull_100k_floor_s`: every page pulled through the adapter, nothing recorded.
* `validate_200k_s` (target 120) / `validate_200k_peak_mb` (target 500): `engine.validate`
  over 200,000 in-scope fees the vendor also holds, with deliberate differences (fees
  deleted at the vendor, foreign fees, payments the pulls missed, amounts that differ),
  whose counts are asserted. It runs in a fresh subprocess (`bench/sync_child.py`); the
  peak figure is that process's peak RSS (VmHWM, see sync_child.py) minus its RSS just before
  `validate` (Django set up, engine imported). Floor `validate_200k_floor_s`: listing
  every vendor fee through the adapter.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.fees.models import Fee, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import Origin, fee_create
from apps.students.models import Student
from apps.vendors import engine
from apps.vendors.kinds.base import Capability, FeeRecord, VendorAdapter
from apps.vendors.models import Discrepancy, Integration, OutboxItem, SyncedFee
from apps.vendors.registry import get_adapter_class, load_sandbox, sandboxes
from apps.vendors.sandboxes.client import SandboxControl
from apps.vendors.sandboxes.server import SandboxServer
from bench import Result, data, ratio, result, stopwatch

ROOT = Path(__file__).resolve().parent.parent
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
AMOUNT = Decimal("25.00")
CHUNK = 5000  # fees or payments per control-API call when staging the vendor side

PUSH_N = 500
PUSH_SPACING_S = 0.040
PUSH_WARMUP = 10
BACKLOG_N = 50_000
PULL_N = 100_000
VALIDATE_N = 200_000
STUDENTS = 50_000

# Deliberate differences for validation.
DELETED_AT_VENDOR = 25
DIFFERENT_AT_VENDOR = 20
FOREIGN_AT_VENDOR = 10
MISSED_PAYMENTS = 30


# --- infrastructure ----------------------------------------------------------------------------


def vendor_kinds() -> list[str]:
    """Vendors with both a sandbox and an adapter (an adapter still being written is
    skipped, with a note, rather than crashing every benchmark of the module)."""
    kinds = []
    for kind in sandboxes():
        try:
            adapter = get_adapter_class(kind)
        except LookupError:
            print(f"   (bench_sync: {kind} has a sandbox but no adapter yet; skipped)")
            continue
        if Capability.SEND not in adapter.capabilities:
            continue  # a kind that takes fees as files has its own benchmarks
        kinds.append(kind)
    return kinds


@contextlib.contextmanager
def running_sandbox(kind: str) -> Iterator[SandboxServer]:
    server: SandboxServer = load_sandbox(kind).make_server(0)
    try:
        server.start()
        yield server
    finally:
        server.shutdown()


def _credentials(kind: str) -> dict[str, str]:
    """The sandbox's default credentials, by the adapter's credential field names
    (`username` -> the sandbox module's DEFAULT_USERNAME, `api_key` -> DEFAULT_API_KEY)."""
    module = load_sandbox(kind)
    fields = get_adapter_class(kind).credential_labels()
    return {name: str(getattr(module, f"DEFAULT_{name.upper()}")) for name in fields}


def make_integration(kind: str, server: SandboxServer, *, enabled: bool = True) -> Integration:
    """The bench's integration with the sandbox: every category, fees dated on or after
    the bench fee date (so every bench fee is in scope)."""
    Integration.objects.filter(slug__startswith="bench-").delete()
    integration = Integration(
        vendor_kind=kind,
        slug=f"bench-{kind}",
        name=f"Bench {kind}",
        enabled=enabled,
        service_url=server.url,
        timeout_seconds=30,
        import_after=data.FEE_DATE,
    )
    integration.credentials = _credentials(kind)
    integration.save()
    return integration


def _mark_sent(integration: Integration, fee_ids: Sequence[int]) -> None:
    """Record that the vendor holds these fees (as delivery would have): a vendor settles
    only fees it was sent, so a bench that seeds the vendor directly says so here."""
    now = timezone.now()
    data.copy_rows(
        "vendors_syncedfee",
        ["integration_id", "fee_id", "acknowledged_version", "first_sent_at", "acknowledged_at"],
        ((integration.pk, pk, 1, now, now) for pk in fee_ids),
    )


def _cleanup() -> None:
    """Leave no integration behind: other benchmarks' fee changes must not reach a dead
    sandbox (nor queue Celery tasks)."""
    Integration.objects.filter(slug__startswith="bench-").delete()
    data.reset_ledger()


@contextlib.contextmanager
def bench_broker() -> Iterator[None]:
    """Point this process's Celery app at the bench's Redis database (emptied before and
    after), so the on-commit triggers it sends reach the bench worker and nothing else."""
    import redis

    from config.celery import app

    def reset_pools() -> None:
        # Forget (do not close) the app's pools: kombu keeps one pool per broker address
        # for the whole process, and a closed one would be handed back next time.
        app._pool = None
        with contextlib.suppress(AttributeError, KeyError):
            app.__dict__["amqp"]._producer_pool = None

    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    reset_pools()
    app.conf.broker_url = BROKER_URL
    app.conf.broker_transport_options = {"visibility_timeout": 4 * 3600}
    app.conf.task_always_eager = False
    try:
        yield
    finally:
        reset_pools()
        app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = saved
        client.flushdb()
        client.close()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": os.environ["DATABASE_URL"],  # set by bench.run
            "DJANGO_DEBUG": "false",
            "CELERY_BROKER_URL": BROKER_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
        }
    )
    return env


@contextlib.contextmanager
def celery_worker() -> Iterator[Path]:
    """One `celery -A config worker -B` (two pool processes, the outbox sweeper on its
    production schedule) against the bench database; stopped whatever happens (a warm
    shutdown, then SIGKILL to its process group if that takes over 30 s), its temporary
    directory removed. Yields the path of its log."""
    tmp = Path(tempfile.mkdtemp(prefix="feesync-bench-worker-"))
    log_path = tmp / "worker.log"
    env = _child_env()
    env["CELERY_BEAT_SCHEDULER"] = "celery.beat:PersistentScheduler"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-B",
                "-s",
                str(tmp / "beat-schedule"),
                "-Q",
                "celery,delivery",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"bench-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait(
                lambda: b"ready" in log_path.read_bytes() or proc.poll() is not None,
                timeout=90,
                what="the Celery worker to start",
            )
            if proc.poll() is not None:
                raise RuntimeError(f"The worker exited:\n{_tail(log_path)}")
            yield log_path
        except BaseException:
            print(f"   worker log (tail):\n{_tail(log_path)}", flush=True)
            raise
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm shutdown: it stops its own pool
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)  # the worker and its pool
                    proc.wait(10)
            shutil.rmtree(tmp, ignore_errors=True)


def _tail(path: Path, size: int = 4000) -> str:
    return path.read_text(errors="replace")[-size:]


def _wait(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `check` until it is truthy; bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"Timed out after {timeout:g} s waiting for {what}.")


def _ready_adapter(integration: Integration) -> VendorAdapter:
    """The integration's adapter, its connection and service description already loaded
    (a floor measures the calls, not the first WSDL fetch)."""
    adapter = engine.adapter_for(integration)
    check = adapter.test_push()
    assert check.ok, check.answer
    return adapter


def _p(values: Sequence[float], pct: int) -> float:
    """The pct-th percentile (inclusive method: 50 is the median)."""
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


# --- staging big data on both sides ----------------------------------------------------------


def _stage_fees(n: int) -> tuple[list[int], dict[int, str]]:
    """`n` open bench fees of AMOUNT over STUDENTS students (round robin), by COPY; returns
    the fee ids and each student's number by student id."""
    data.reset_ledger()
    cat = data.catalog()
    _, student_ids = data.ensure_students(STUDENTS)
    picks = [student_ids[i % len(student_ids)] for i in range(n)]
    fee_ids = data.copy_charges(picks, catalog=cat, amount=AMOUNT)
    data.analyze()
    numbers = dict(Student.objects.filter(pk__in=student_ids).values_list("pk", "student_number"))
    return fee_ids, numbers


def _vendor_fee(ref: str, student_number: str, amount: Decimal = AMOUNT) -> dict[str, Any]:
    return {
        "fee_ref": ref,
        "version": 1,
        "student_id": student_number,
        "student_name": "Bench Student",
        "school_code": f"BENCH-{STUDENTS}",
        "category_code": "BENCH",
        "merchant_id": "MID-BENCH-001",
        "description": "Bench fee",
        "amount": str(amount),
        "amount_due": str(amount),
        "fee_date": data.FEE_DATE.isoformat(),
        "due_date": data.DUE_DATE.isoformat(),
        "active": True,
    }


def _seed_vendor(control: SandboxControl, fees: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(fees), CHUNK):
        results = control.seed_fees(fees[start : start + CHUNK])
        assert all(r["status"] == "accepted" for r in results), results[:3]


def _fee_refs(fee_ids: Sequence[int]) -> list[tuple[int, str, int]]:
    """(fee id, reference, student id) of the fees, in id order."""
    return list(
        Fee.objects.filter(pk__in=fee_ids)
        .order_by("pk")
        .values_list("pk", "reference", "student_id")
    )


# --- push latency --------------------------------------------------------------------------------


def push_latency(kind: str) -> list[Result]:
    """Commit-to-vendor latency of single fees through the real worker."""
    cat = data.catalog()
    data.reset_ledger()
    _, student_ids = data.ensure_students(PUSH_N + PUSH_WARMUP)
    students = list(Student.objects.filter(pk__in=student_ids).order_by("pk"))
    origin = Origin(user=cat.clerk)
    try:
        with running_sandbox(kind) as server, bench_broker(), celery_worker() as log:
            integration = make_integration(kind, server)
            committed: dict[str, float] = {}

            def create(student: Student) -> None:
                stamp: dict[str, float] = {}
                with transaction.atomic():
                    # Registered before the engine's trigger, so it runs first after COMMIT.
                    transaction.on_commit(lambda: stamp.setdefault("t", time.time()))
                    fee = fee_create(
                        student=student,
                        category=cat.category,
                        merchant_account=cat.merchant_account,
                        description="Field trip",
                        amount=AMOUNT,
                        fee_date=data.FEE_DATE,
                        due_date=data.DUE_DATE,
                        origin=origin,
                    )
                committed[fee.reference] = stamp["t"]

            # Warm-up: both pool processes import and connect once, as in steady state.
            for student in students[:PUSH_WARMUP]:
                create(student)
                time.sleep(PUSH_SPACING_S)
            _wait(
                lambda: len(server.state.receipts()) >= PUSH_WARMUP,
                timeout=60,
                what="the warm-up fees at the vendor",
            )
            committed.clear()
            next_at = time.monotonic()
            for student in students[PUSH_WARMUP:]:
                create(student)
                next_at += PUSH_SPACING_S
                time.sleep(max(0.0, next_at - time.monotonic()))
            receipts = _wait(
                lambda: (r := server.state.receipts()) and all(ref in r for ref in committed) and r,
                timeout=120,
                what="every fee at the vendor",
            )
            _wait(
                lambda: not OutboxItem.objects.filter(integration=integration).exists(),
                timeout=60,
                what="the outbox to empty",
            )
            latencies = [(receipts[ref] - t) * 1000 for ref, t in committed.items()]
            assert len(latencies) == PUSH_N and min(latencies) > 0, (len(latencies), log)
            assert len(receipts) == PUSH_N + PUSH_WARMUP  # nothing twice, nothing foreign

            adapter = _ready_adapter(integration)
            floors = []
            for _ in range(100):
                with stopwatch() as sw:
                    check = adapter.test_push()
                assert check.ok, check.answer
                floors.append(sw.seconds * 1000)
    finally:
        _cleanup()
    p50, p99, floor = _p(latencies, 50), _p(latencies, 99), statistics.median(floors)
    return [
        result(f"{kind}.push_latency_p50_ms", p50, "ms", target=150, n=PUSH_N),
        result(f"{kind}.push_latency_p99_ms", p99, "ms", target=1000, n=PUSH_N),
        result(f"{kind}.push_latency_max_ms", max(latencies), "ms", n=PUSH_N),
        result(f"{kind}.push_floor_ms", floor, "ms", n=len(floors)),
        ratio(f"{kind}.push_latency_p50_ratio", p50, floor, n=PUSH_N),
    ]


# --- backlog drain -------------------------------------------------------------------------------


def backlog_drain(kind: str) -> list[Result]:
    """A 50,000-change backlog drained by the worker once the vendor is back."""
    fee_ids, _ = _stage_fees(BACKLOG_N)
    try:
        with running_sandbox(kind) as server, bench_broker(), celery_worker():
            control = SandboxControl(server.url)
            control.faults("down")
            integration = make_integration(kind, server, enabled=False)
            with transaction.atomic():
                queued = engine.outbox_enqueue(integration=integration, fee_ids=fee_ids)
            assert queued == BACKLOG_N, queued
            connection.cursor().execute("ANALYZE vendors_outboxitem")

            from apps.vendors.tasks import deliver_outbox

            with stopwatch() as real:
                control.faults("ok")
                Integration.objects.filter(pk=integration.pk).update(enabled=True)
                deliver_outbox.delay(integration.pk)
                _wait(
                    lambda: not OutboxItem.objects.filter(integration=integration).exists(),
                    timeout=900,
                    what="the backlog to drain",
                    interval=0.1,
                )
            held = server.state.receipts()
            assert len(held) == BACKLOG_N, len(held)
            assert SyncedFee.objects.filter(integration=integration).count() == BACKLOG_N
            refs = set(Fee.objects.filter(pk__in=fee_ids).values_list("reference", flat=True))
            assert set(held) == refs

            # Floor: the same records straight through the adapter into an empty sandbox.
            records = engine.fee_records(integration, fee_ids)
            batch = [records[pk] for pk in fee_ids]
            adapter = _ready_adapter(integration)
            control.reset()
            with stopwatch() as floor:
                acked = _push_all(adapter, batch)
            assert acked == BACKLOG_N and len(server.state.receipts()) == BACKLOG_N
    finally:
        _cleanup()
    return [
        result(f"{kind}.backlog_50k_drain_s", real.seconds, "s", target=60, n=BACKLOG_N),
        result(f"{kind}.backlog_50k_floor_s", floor.seconds, "s", n=BACKLOG_N),
        ratio(f"{kind}.backlog_50k_ratio", real.seconds, floor.seconds, n=BACKLOG_N),
    ]


def _push_all(adapter: VendorAdapter, records: Sequence[FeeRecord]) -> int:
    acked = 0
    size = adapter.push_batch_size
    for start in range(0, len(records), size):
        outcome = adapter.push_fees(records[start : start + size])
        assert not outcome.rejected, list(outcome.rejected.items())[:3]
        acked += len(outcome.acknowledged)
    return acked


# --- payments pull ---------------------------------------------------------------------------


def pull_payments(kind: str) -> list[Result]:
    """100,000 vendor payments pulled and recorded, then pulled again from the start."""
    fee_ids, numbers = _stage_fees(PULL_N)
    rows = _fee_refs(fee_ids)
    try:
        with running_sandbox(kind) as server, bench_broker():
            control = SandboxControl(server.url, timeout=300)
            _seed_vendor(control, [_vendor_fee(ref, numbers[sid]) for _, ref, sid in rows])
            # Half pay in full, half in part: plain online payments, one per fee.
            payments = [
                {"fee_ref": ref, "amount": str(AMOUNT if i % 2 else Decimal("10.00"))}
                for i, (_, ref, _) in enumerate(rows)
            ]
            for start in range(0, len(payments), CHUNK):
                control.pay_many(payments[start : start + CHUNK])
            integration = make_integration(kind, server)
            _mark_sent(integration, fee_ids)
            source = integration.external_source
            entries_before = LedgerEntry.objects.count()

            with stopwatch() as real:
                first = engine.payments_pull(integration=integration)
            recorded = LedgerEntry.objects.filter(external_source=source).count()
            assert first.recorded == PULL_N and recorded == PULL_N, (first, recorded)
            assert first.unmatched == 0, first
            report = ledger_report()
            assert report.ok, report.breaches[:5]
            assert report.counts["entries"] == entries_before + PULL_N, report.counts
            integration.refresh_from_db()
            assert integration.payment_cursor

            with stopwatch() as again:
                second = engine.payments_pull(integration=integration, from_start=True)
            assert second.recorded == 0 and second.already_recorded == PULL_N, second
            assert LedgerEntry.objects.filter(external_source=source).count() == PULL_N

            adapter = _ready_adapter(integration)
            with stopwatch() as floor:
                seen = _pull_all(adapter)
            assert seen == PULL_N, seen
    finally:
        _cleanup()
    return [
        result(f"{kind}.pull_100k_s", real.seconds, "s", target=60, n=PULL_N),
        result(f"{kind}.repull_100k_s", again.seconds, "s", target=20, n=PULL_N),
        result(f"{kind}.pull_100k_floor_s", floor.seconds, "s", n=PULL_N),
        ratio(f"{kind}.pull_100k_ratio", real.seconds, floor.seconds, n=PULL_N),
        ratio(f"{kind}.repull_100k_ratio", again.seconds, floor.seconds, n=PULL_N),
    ]


def _pull_all(adapter: VendorAdapter) -> int:
    seen, cursor = 0, None
    for _ in range(10_000):  # bounded: 10 million payments at 1000 a page
        page = adapter.pull_payments(cursor=cursor, limit=1000)
        seen += len(page.payments)
        cursor = page.cursor
        if not page.has_more:
            return seen
    raise RuntimeError("The vendor never said there were no more payments.")


# --- validation ----------------------------------------------------------------------------


def validate_fees(kind: str) -> list[Result]:
    """`engine.validate` over 200,000 fees on both sides, in a fresh process."""
    fee_ids, numbers = _stage_fees(VALIDATE_N)
    rows = _fee_refs(fee_ids)
    deleted = rows[1000 : 1000 + DELETED_AT_VENDOR]
    different = rows[5000 : 5000 + DIFFERENT_AT_VENDOR]
    missed = rows[9000 : 9000 + MISSED_PAYMENTS]
    different_refs = {ref for _, ref, _ in different}
    try:
        with running_sandbox(kind) as server, bench_broker():
            control = SandboxControl(server.url, timeout=300)
            _seed_vendor(
                control,
                [
                    _vendor_fee(
                        ref, numbers[sid], Decimal("30.00") if ref in different_refs else AMOUNT
                    )
                    for _, ref, sid in rows
                ],
            )
            for _, ref, _ in deleted:
                control.delete_fee(ref)
            for i in range(FOREIGN_AT_VENDOR):
                control.foreign_fee(numbers[rows[i][2]], "12.00")
            control.pay_many([{"fee_ref": ref, "amount": "5.00"} for _, ref, _ in missed])
            integration = make_integration(kind, server)
            _mark_sent(integration, fee_ids)

            child = subprocess.run(  # noqa: S603 - our own child, fixed arguments
                [sys.executable, "-m", "bench.sync_child", "validate", str(integration.pk)],
                cwd=ROOT,
                env=_child_env(),
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            if child.returncode != 0:
                raise RuntimeError(f"validate child failed:\n{child.stderr[-4000:]}")
            out = json.loads(child.stdout.strip().splitlines()[-1])
            counts = out["counts"]
            expected = {
                "vendor_fees": VALIDATE_N - DELETED_AT_VENDOR + FOREIGN_AT_VENDOR,
                "foreign": FOREIGN_AT_VENDOR,
                "missing": DELETED_AT_VENDOR,
                "different": DIFFERENT_AT_VENDOR,
                "repushed": DELETED_AT_VENDOR + DIFFERENT_AT_VENDOR,
                "payments_missed": MISSED_PAYMENTS,
                "checked": VALIDATE_N,
            }
            assert counts == expected, (counts, expected)
            found = Discrepancy.objects.filter(integration=integration)
            assert found.filter(kind=Discrepancy.Kind.FOREIGN_FEE).count() == FOREIGN_AT_VENDOR
            assert found.filter(kind=Discrepancy.Kind.PAYMENT_MISSED).count() == MISSED_PAYMENTS
            assert OutboxItem.objects.filter(integration=integration).count() == (
                DELETED_AT_VENDOR + DIFFERENT_AT_VENDOR
            )
            assert (
                LedgerEntry.objects.filter(external_source=integration.external_source).count()
                == MISSED_PAYMENTS
            )

            adapter = _ready_adapter(integration)
            with stopwatch() as floor:
                listed = _list_all(adapter)
            assert listed == expected["vendor_fees"], listed
    finally:
        _cleanup()
    seconds = float(out["seconds"])
    peak_mb = (out["rss_peak_kb"] - out["rss_before_kb"]) / 1024
    return [
        result(f"{kind}.validate_200k_s", seconds, "s", target=120, n=VALIDATE_N),
        result(f"{kind}.validate_200k_peak_mb", peak_mb, "MB", target=500, n=VALIDATE_N),
        result(f"{kind}.validate_200k_peak_rss_mb", out["rss_peak_kb"] / 1024, "MB", n=VALIDATE_N),
        result(f"{kind}.validate_200k_floor_s", floor.seconds, "s", n=VALIDATE_N),
        ratio(f"{kind}.validate_200k_ratio", seconds, floor.seconds, n=VALIDATE_N),
    ]


def _list_all(adapter: VendorAdapter) -> int:
    seen, cursor = 0, None
    for _ in range(10_000):
        page = adapter.list_fees(cursor=cursor)
        seen += len(page.fees)
        cursor = page.cursor
        if not page.has_more:
            return seen
    raise RuntimeError("The vendor never said there were no more fees.")


# --- the module's benchmarks ---------------------------------------------------------------------


def _per_vendor(fn: Callable[[str], list[Result]], kind: str) -> Callable[[], list[Result]]:
    def bench() -> list[Result]:
        return fn(kind)

    bench.__name__ = bench.__qualname__ = f"{kind}_{fn.__name__}"
    bench.__doc__ = fn.__doc__
    return bench


BENCHMARKS = [
    _per_vendor(fn, kind)
    for kind in vendor_kinds()
    for fn in (push_latency, backlog_drain, pull_payments, validate_fees)
]


def run() -> list[Result]:
    """Every benchmark of this module (`bench.run` runs them one by one via BENCHMARKS)."""
    return [row for bench in BENCHMARKS for row in bench()]
