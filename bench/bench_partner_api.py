"""The partner API's benchmark (issue 13): payments posted by a vendor's 8 concurrent
clients over real HTTP to gunicorn, and retries of them replayed.

Stage: 2,000 students of the bench database (`data.ensure_students`), an enabled
Partner API integration with one API user in both groups and an application key.

Serve: gunicorn (`bench.servers.gunicorn`: `config.wsgi`, DEBUG off) on a free loopback
port with `--worker-class gthread` (BENCH_PARTNER_WORKER_CLASS), BENCH_PARTNER_WORKERS (2)
processes of BENCH_PARTNER_THREADS (4) threads and keep-alive, as docs/partner-api.md
recommends for serving the API. The clients keep their connections and sign in with an
application key (the documented fast path); each sends prepared HTTP/1.1 requests on a
plain socket (`Connection`), so that the load generator's own CPU, on the same two cores,
stays small next to the server's.

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
* `partner_api.db_cpu_ms_per_post` / `_per_replay`: likewise PostgreSQL's, the CPU of the
  server processes of the bench database's sessions (`db_cpu_seconds`).
Afterwards `ledger_report()` must find no breach (`manage.py ledger_check`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import threading
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import connection

from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from apps.partner_api.services import api_key_issue, api_user_create
from apps.students.models import Student
from apps.vendors.models import Integration
from bench import Result, data, ratio, result, servers
from bench.servers import STATIC_PATH, Server

CLIENTS = 8
STUDENTS = 2_000
POSTS_PER_CLIENT = int(os.environ.get("BENCH_PARTNER_POSTS", "250"))
WARMUP_PER_CLIENT = 10
REPLAYS = 10_000
PATH = "/api/student-accounting/ledger-payment-transactions"
API_WORKERS = int(os.environ.get("BENCH_PARTNER_WORKERS", "2"))
API_THREADS = int(os.environ.get("BENCH_PARTNER_THREADS", "4"))
API_WORKER_CLASS = os.environ.get("BENCH_PARTNER_WORKER_CLASS", "gthread")


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


class Connection:
    """One client's persistent HTTP/1.1 connection, speaking just enough HTTP to post a
    prepared request and read its answer. Why not `requests`: its ~1 ms of CPU a call runs on
    the same two cores as the server, so it measured the client as much as the API."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def exchange(self, request: bytes) -> tuple[int, bytes, bytes]:
        """Send `request` (connecting first when the server closed the connection: a sync
        worker answers each request with `Connection: close`); (status, header block, body)
        of the answer."""
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        self.sock.sendall(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._read()
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if close:
            self.close()
        return int(head[9:12]), head, body

    def _read(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def post_request(key: str, idem: str, payload: str) -> bytes:
    data = payload.encode()
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {key}\r\n"
        f"Content-Type: application/json\r\nIdempotency-Key: {idem}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def clients(
    port: int, work: list[list[bytes]], expect: int, replayed: bool
) -> tuple[list[float], float]:
    """Each client sends its prepared requests back to back on its own connection (waiting
    for each answer); returns the latencies (ms) and the wall time. Every answer is checked."""
    latencies: list[list[float]] = [[] for _ in work]
    errors: list[BaseException] = []
    go = threading.Barrier(len(work) + 1)

    def run(i: int) -> None:
        conn = Connection(port)
        try:
            go.wait()
            for request in work[i]:
                started = time.perf_counter()
                status, head, body = conn.exchange(request)
                latencies[i].append((time.perf_counter() - started) * 1000)
                if status != expect:
                    raise AssertionError(f"{status}: {body[:300]!r}")
                if replayed and b"\r\nidempotent-replayed: true" not in head.lower():
                    raise AssertionError("a retry was not answered as a replay")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            conn.close()

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


def floor(port: int) -> list[float]:
    """The same 8 clients getting the static file: the round trip with no view behind it."""
    request = f"GET {STATIC_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    latencies, _ = clients(port, [[request] * POSTS_PER_CLIENT for _ in range(CLIENTS)], 200, False)
    return latencies


def started_gunicorn(database_url: str) -> contextlib.AbstractContextManager[Server]:
    """gunicorn as docs/partner-api.md recommends for serving the API (see the module's
    docstring for why this worker class)."""
    return servers.gunicorn(
        database_url,
        name="partner",
        workers=API_WORKERS,
        worker_class=API_WORKER_CLASS,
        threads=API_THREADS,
        # Each worker keeps its database connection for the whole run (60 s in production:
        # a reconnection a minute costs nothing measurable), so db_cpu_seconds, which reads
        # the sessions' server processes, loses none that ended.
        env={"DB_CONN_MAX_AGE": "600"},
    )


def db_cpu_seconds() -> float:
    """CPU time (user + system) used so far by the PostgreSQL server processes of the bench
    database's sessions, from /proc (PostgreSQL runs on this machine: loopback)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    connection.close()
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / hz


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def run() -> list[Result]:
    from django.core.management import call_command

    key, numbers = stage()
    call_command("collectstatic", interactive=False, verbosity=0)
    database_url = os.environ["DATABASE_URL"]
    connection.close()

    def batch(tag: str, n: int) -> list[list[bytes]]:
        return [
            [
                post_request(
                    key,
                    f"{tag}-{c}-{k}",
                    body(numbers[(c * n + k) % len(numbers)], f"{tag}-{c}-{k}"),
                )
                for k in range(n)
            ]
            for c in range(CLIENTS)
        ]

    with started_gunicorn(database_url) as server:
        clients(server.port, batch("warm", WARMUP_PER_CLIENT), 201, False)
        posted = batch("pay", POSTS_PER_CLIENT)
        cpu_before, db_before = server.cpu_seconds(), db_cpu_seconds()
        latencies, wall = clients(server.port, posted, 201, False)
        post_cpu = server.cpu_seconds() - cpu_before
        post_db_cpu = db_cpu_seconds() - db_before
        floor_ms = floor(server.port)
        entries = LedgerEntry.objects.count()
        connection.close()
        every = [item for per in posted for item in per]
        retries = [
            [every[(c * (REPLAYS // CLIENTS) + k) % len(every)] for k in range(REPLAYS // CLIENTS)]
            for c in range(CLIENTS)
        ]
        cpu_before, db_before = server.cpu_seconds(), db_cpu_seconds()
        _, replay_wall = clients(server.port, retries, 201, True)
        replay_cpu = server.cpu_seconds() - cpu_before
        replay_db_cpu = db_cpu_seconds() - db_before
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
        result("partner_api.db_cpu_ms_per_post", post_db_cpu * 1000 / n, "ms", n=n),
        result("partner_api.db_cpu_ms_per_replay", replay_db_cpu * 1000 / REPLAYS, "ms", n=REPLAYS),
    ]
