"""The partner API's benchmark (issue 13): payments posted by a vendor's 8 concurrent
clients over real HTTP to gunicorn, and retries of them replayed.

Stage: 2,000 students of the bench database (`data.ensure_students`), an enabled
Partner API integration with one API user in both groups and an application key.

Serve: gunicorn as the portal benchmark's (`config.wsgi`, DEBUG off) on a free loopback
port, but with `--worker-class gthread`, BENCH_PARTNER_WORKERS (2) processes of
BENCH_PARTNER_THREADS (4) threads and keep-alive, as docs/partner-api.md recommends for
serving the API; the clients reuse their connections (one `requests.Session` each) and
sign in with an application key (the documented fast path).

* `partner_api.post_payment_p99_ms` (target 50): the 99th percentile latency of
  `POST /api/student-accounting/ledger-payment-transactions` with 8 clients posting back to
  back (each waits for its previous answer), each payment new (its own
  VendorTransactionId and Idempotency-Key) to a random student, every answer checked (201).
* `partner_api.payments_per_s` (target 300): payments recorded per second in that run.
* `partner_api.floor_p99_ms`: the same 8 clients on a static file through the same gunicorn
  (the round trip with no view behind it); `partner_api.post_payment_p99_ratio`: real / floor.
* `partner_api.replay_10k_s` (target 15): 10,000 retries of payments already posted (same
  Idempotency-Key, same body) by the 8 clients; every answer must be the replayed 201 and
  the ledger must hold exactly as many entries afterwards (0 new).
* `partner_api.server_cpu_ms_per_post` / `_per_replay`: gunicorn's workers' CPU (user + system,
  from /proc, `Server.cpu_seconds`) per call in those runs: load-independent, unlike the latencies.
Afterwards `ledger_report()` must find no breach (`manage.py ledger_check`).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from django.contrib.auth import get_user_model
from django.db import connection

from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from apps.partner_api.services import api_key_issue, api_user_create
from apps.students.models import Student
from apps.vendors.models import Integration
from bench import Result, data, ratio, result
from bench.bench_portal import ROOT, STATIC_PATH, Server, free_port

CLIENTS = 8
STUDENTS = 2_000
POSTS_PER_CLIENT = int(os.environ.get("BENCH_PARTNER_POSTS", "250"))
WARMUP_PER_CLIENT = 10
REPLAYS = 10_000
PATH = "/api/student-accounting/ledger-payment-transactions"
API_WORKERS = int(os.environ.get("BENCH_PARTNER_WORKERS", "2"))
API_THREADS = int(os.environ.get("BENCH_PARTNER_THREADS", "4"))


def stage() -> tuple[str, list[str]]:
    """(application key, student numbers)."""
    school, _ = data.ensure_students(STUDENTS)
    integration, _ = Integration.objects.get_or_create(
        slug="partner-bench",
        defaults={
            "vendor_kind": "partnerapi",
            "name": "Partner (bench)",
            "enabled": True,
            "service_url": "https://vendor.example.org/",
        },
    )
    user, _ = get_user_model().objects.get_or_create(
        username="partner-bench", defaults={"is_staff": True}
    )
    api_user = api_user_create(
        user=user,
        integration=integration,
        groups=("API - Student Accounting", "API - Student Payment Plan"),
    )
    key = api_key_issue(api_user=api_user, name="bench")[1]
    numbers = list(Student.objects.filter(school=school).values_list("student_number", flat=True))
    return key, numbers


def body(number: str, vid: str) -> str:
    return json.dumps(
        {
            "StudentId": number,
            "TransactionAmount": "12.50",
            "TransactionDate": "2026-09-15T00:00:00",
            "PaymentType": "CreditCard",
            "Description": "Bench payment",
            "VendorTransactionId": vid,
        }
    )


def clients(
    base: str, key: str, work: list[list[tuple[str, str]]], expect: int, replayed: bool
) -> tuple[list[float], float]:
    """Each client posts its (Idempotency-Key, body) list back to back; returns the
    latencies (ms) and the wall time. Every answer is checked."""
    latencies: list[list[float]] = [[] for _ in work]
    errors: list[BaseException] = []
    go = threading.Barrier(len(work) + 1)

    def run(i: int) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
        try:
            go.wait()
            for idem, payload in work[i]:
                started = time.perf_counter()
                response = session.post(
                    base + PATH,
                    data=payload,
                    headers={**headers, "Idempotency-Key": idem},
                    timeout=60,
                )
                latencies[i].append((time.perf_counter() - started) * 1000)
                if response.status_code != expect:
                    raise AssertionError(f"{response.status_code}: {response.text[:300]}")
                if replayed and response.headers.get("Idempotent-Replayed") != "true":
                    raise AssertionError("a retry was not answered as a replay")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    go.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(timeout=900)
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return [ms for per in latencies for ms in per], wall


def floor(base: str) -> list[float]:
    out: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        session = requests.Session()
        for _ in range(POSTS_PER_CLIENT):
            started = time.perf_counter()
            session.get(base + STATIC_PATH, timeout=30).raise_for_status()
            with lock:
                out.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=run) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return out


@contextlib.contextmanager
def started_gunicorn(database_url: str) -> Iterator[Server]:
    """gunicorn as `bench_portal.gunicorn` serves it (same environment; gthread), with a
    patient readiness probe: on a busy machine the workers take seconds to import Django."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "memory://",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LOG_LEVEL": "WARNING",
    }
    log = Path(tempfile.mkdtemp(prefix="feesync-bench-partner-")) / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}"]
    # Threads, not sync workers: a sync worker closes every connection (no keep-alive), so
    # each of the 8 clients' posts paid a new TCP connection and waited in the listen queue
    # behind 4 processes; gthread keeps the clients' connections and lets a thread waiting
    # on PostgreSQL leave the GIL to another. 2 processes x 4 threads for 2 cores.
    command += ["--workers", str(API_WORKERS), "--worker-class", "gthread"]
    command += ["--threads", str(API_THREADS), "--keep-alive", "5"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({proc.returncode}); see {log}")
            with contextlib.suppress(requests.ConnectionError, requests.Timeout):
                if requests.get(base + STATIC_PATH, timeout=20).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 120 s; see {log}")
            time.sleep(0.5)
        yield Server(base=base, pid=proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def run() -> list[Result]:
    from django.core.management import call_command

    key, numbers = stage()
    call_command("collectstatic", interactive=False, verbosity=0)
    database_url = os.environ["DATABASE_URL"]
    connection.close()

    def batch(tag: str, n: int) -> list[list[tuple[str, str]]]:
        return [
            [
                (f"{tag}-{c}-{k}", body(numbers[(c * n + k) % len(numbers)], f"{tag}-{c}-{k}"))
                for k in range(n)
            ]
            for c in range(CLIENTS)
        ]

    with started_gunicorn(database_url) as server:
        clients(server.base, key, batch("warm", WARMUP_PER_CLIENT), 201, False)
        posted = batch("pay", POSTS_PER_CLIENT)
        cpu_before = server.cpu_seconds()
        latencies, wall = clients(server.base, key, posted, 201, False)
        post_cpu = server.cpu_seconds() - cpu_before
        floor_ms = floor(server.base)
        entries = LedgerEntry.objects.count()
        connection.close()
        every = [item for per in posted for item in per]
        retries = [
            [every[(c * (REPLAYS // CLIENTS) + k) % len(every)] for k in range(REPLAYS // CLIENTS)]
            for c in range(CLIENTS)
        ]
        cpu_before = server.cpu_seconds()
        _, replay_wall = clients(server.base, key, retries, 201, True)
        replay_cpu = server.cpu_seconds() - cpu_before
    new = LedgerEntry.objects.count() - entries
    if new:
        raise AssertionError(f"{new} entries were posted by retries")
    report = ledger_report()
    if not report.ok:
        raise AssertionError(f"ledger_check: {report.breaches[:3]}")
    n = len(latencies)
    real = p99(latencies)
    floor_p99 = p99(floor_ms)
    return [
        result("partner_api.post_payment_p99_ms", real, "ms", target=50.0, n=n),
        result("partner_api.post_payment_p50_ms", statistics.median(latencies), "ms", n=n),
        result(
            "partner_api.payments_per_s", n / wall, "1/s", target=300.0, n=n, higher_is_better=True
        ),
        result("partner_api.floor_p99_ms", floor_p99, "ms", n=len(floor_ms)),
        ratio("partner_api.post_payment_p99_ratio", real, floor_p99, n=n),
        result("partner_api.replay_10k_s", replay_wall, "s", target=15.0, n=REPLAYS),
        # Load-independent: the server's CPU per call (the machine is shared).
        result("partner_api.server_cpu_ms_per_post", post_cpu * 1000 / n, "ms", n=n),
        result(
            "partner_api.server_cpu_ms_per_replay", replay_cpu * 1000 / REPLAYS, "ms", n=REPLAYS
        ),
    ]
