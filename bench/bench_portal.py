"""The parent portal's benchmark (issue 6; DESIGN.md, "Benchmarks"): the Fees and Fines page
under 20 concurrent signed-in parents, served the way production serves it.

Stage: the bench database's 50,000 students (`data.ensure_students`) with 150,000 fees in
the realistic ledger mix (`data.load_ledger`: open, part paid, paid, refunded, waived,
voided; three per student), an enabled integration that shows lunch and vendor balances and
counts its vendor balance in the district's lockout (on, above $20.00: so every part of the
page is rendered, the lock notice included), and 20 parents
with one to three children each, every child with a lunch and a vendor balance.

Serve: gunicorn (`config.wsgi`, settings `config.settings.local` with DJANGO_DEBUG off,
`DATABASE_URL` the bench database) on a free loopback port, with `GUNICORN_WORKERS` sync
workers, default 4 (two per core: a sync worker waiting on PostgreSQL leaves its core to
another; 4 served more pages per second than 2 or 3 here). The server's Celery broker is
`memory://`: the background pull a parent's sign-in queues is dropped, which is what the
page must not depend on anyway.

Load: 20 threads, one `requests.Session` per parent, each signed in once through the real
sign-in form, then bounded loops of requests to 127.0.0.1 only (after a warm-up), every
response checked (status 200, the parent's own children and the pay button on it).

* `portal_p95_ms` (target 100): the 95th percentile latency of `GET /portal/` with the 20
  parents requesting back to back (each waits only for its previous answer): a closed loop
  that keeps the server saturated, so this is about 20 / throughput.
* `portal_p50_ms`: its median. `portal_rps`: pages per second served under that load.
* `portal_floor_p95_ms`: the same load on a static file (`/static/portal/portal.css`, served
  by WhiteNoise through the same gunicorn: the round trip with no Django view behind it).
  `portal_p95_ratio`: real / floor.
* `portal_server_cpu_ms`: gunicorn workers' CPU time per page in the closed loop (not
  PostgreSQL's, not the load generator's): what one page costs, whatever the machine's load.
* `portal_paced_p95_ms`: the 20 parents each loading the page every 0.5 s (40 pages/s
  offered, well under capacity): the latency a parent sees when the server is not saturated.

The machine has two cores shared by gunicorn, PostgreSQL and the load generator, so the
closed loop's p95 is bounded below by 20 x (the CPU of one page, all three together) / 2.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from apps.fees.models import Fee
from apps.portal.models import PortalLockout
from apps.students.models import Guardian, Student
from apps.vendors.models import Integration, LunchBalance, StudentVendorBalance
from bench import Result, data, ratio, result, servers
from bench.servers import STATIC_PATH, Server

STUDENTS = 50_000
FEES = 150_000
PARENTS = 20
REQUESTS_PER_PARENT = int(os.environ.get("BENCH_PORTAL_REQUESTS", "50"))
WARMUP_PER_PARENT = 5
#: The paced run: each parent loads the page every PACED_S seconds (a fast-clicking parent).
PACED_S = 0.5
PACED_REQUESTS = 30
TARGET_P95_MS = 100.0
WORKERS = int(os.environ.get("GUNICORN_WORKERS", "4"))
PASSWORD = "bench-parent-pw-1"  # noqa: S105 - a bench-only account in the bench database
SLUG = "bench-portal"


@dataclass(frozen=True)
class Parent:
    username: str
    child_names: list[str]


# --- staging --------------------------------------------------------------------------------


def stage() -> tuple[Integration, list[Parent]]:
    data.reset_ledger()
    cat = data.catalog()
    _, ids = data.ensure_students(STUDENTS)
    data.load_ledger(ids, FEES, catalog=cat)
    data.analyze()

    Integration.objects.filter(slug=SLUG).delete()
    now = timezone.now()
    integration = Integration(
        vendor_kind="payschools",
        slug=SLUG,
        name="Bench portal",
        enabled=True,
        # Nothing listens there: the sign-in's short pull is refused at once, and the
        # background pull it then queues is dropped by the server's memory:// broker.
        service_url="http://127.0.0.1:9/soap",
        import_after=data.FEE_DATE - timedelta(days=30),
        button_url="https://pay.example.org/parents",
        lunch_payment_url="https://pay.example.org/lunch",
        show_lunch_balance=True,
        show_vendor_balance=True,
        lock_portal_on_balance=True,
        balance_message="Includes charges kept only at PaySchools.",
        parent_message="Fees can be paid online at PaySchools.",
        payments_pulled_at=now - timedelta(minutes=2),
    )
    integration.save()
    # The district's lockout on (issue 11): every page runs the lockout test and the
    # families over $20.00 get the lock notice instead of the section links.
    lockout = PortalLockout.current()
    lockout.enabled = True
    lockout.threshold = Decimal("20.00")
    lockout.locked_sections = ["documents", "activities"]
    lockout.save()

    users = get_user_model()
    parents: list[Parent] = []
    lunch: list[LunchBalance] = []
    balances: list[StudentVendorBalance] = []
    stride = len(ids) // (PARENTS * 3)
    for p in range(PARENTS):
        user, _ = users.objects.get_or_create(username=f"bench-parent-{p}")
        user.set_password(PASSWORD)
        user.is_staff = False
        user.save()
        guardian, _ = Guardian.objects.get_or_create(
            user=user, defaults={"first_name": "Bench", "last_name": f"Parent {p}"}
        )
        child_ids = [ids[(p * 3 + k) * stride] for k in range(p % 3 + 1)]
        guardian.students.set(child_ids)
        for k, sid in enumerate(child_ids):
            lunch.append(
                LunchBalance(
                    integration=integration,
                    student_id=sid,
                    balance=Decimal("3.00") + k * 5,
                    fetched_at=now,
                )
            )
            balances.append(
                StudentVendorBalance(
                    integration=integration,
                    student_id=sid,
                    balance=Decimal(p % 2) * 12,
                    fetched_at=now,
                )
            )
        children = Student.objects.filter(pk__in=child_ids)
        parents.append(Parent(user.username, [s.full_name for s in children]))
    LunchBalance.objects.bulk_create(lunch)
    StudentVendorBalance.objects.bulk_create(balances)
    # Each parent's page really has fees on it (three per child, in the ledger mix).
    for parent in parents:
        assert Fee.objects.filter(student__guardians__user__username=parent.username).exists()
    return integration, parents


# --- the server -----------------------------------------------------------------------------


def gunicorn(database_url: str) -> contextlib.AbstractContextManager[Server]:
    """gunicorn with WORKERS sync processes and the shared cache of production (so sessions
    are read without a query)."""
    return servers.gunicorn(
        database_url,
        name="portal",
        workers=WORKERS,
        worker_class="sync",
        env={"CACHE_URL": os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/13")},
    )


# --- the load -------------------------------------------------------------------------------


def signed_in(base: str, parent: Parent) -> requests.Session:
    session = requests.Session()
    session.get(f"{base}/portal/login/", timeout=10).raise_for_status()
    response = session.post(
        f"{base}/portal/login/",
        data={
            "username": parent.username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": f"{base}/portal/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, (parent.username, response.status_code)
    return session


def load(
    sessions: list[tuple[requests.Session, Parent]],
    url: str,
    check: Callable[[requests.Response, Parent], None],
    *,
    requests_each: int = REQUESTS_PER_PARENT,
    interval_s: float = 0.0,
) -> tuple[list[float], float]:
    """Every session requests `url` WARMUP times, then `requests_each` times, all parents at
    once: back to back (`interval_s` 0: each parent waits only for its previous answer), or
    one request every `interval_s` seconds (started at a random offset, so the parents do
    not click in step). Returns the measured latencies (ms) and the measured wall time."""
    latencies: list[list[float]] = [[] for _ in sessions]
    errors: list[BaseException] = []
    ready = threading.Barrier(len(sessions) + 1)
    go = threading.Barrier(len(sessions) + 1)

    def worker(i: int, session: requests.Session, parent: Parent) -> None:
        rng = random.Random(i)
        try:
            ready.wait()
            for _ in range(WARMUP_PER_PARENT):
                check(session.get(url, timeout=30), parent)
            go.wait()
            start = time.perf_counter() + rng.uniform(0, interval_s)
            for k in range(requests_each):
                if interval_s:
                    time.sleep(max(0.0, start + k * interval_s - time.perf_counter()))
                started = time.perf_counter()
                response = session.get(url, timeout=30)
                latencies[i].append((time.perf_counter() - started) * 1000)
                check(response, parent)
        except BaseException as exc:  # reported below, after every thread has stopped
            errors.append(exc)
            for barrier in (ready, go):
                barrier.abort()

    threads = [
        threading.Thread(target=worker, args=(i, s, p), daemon=True)
        for i, (s, p) in enumerate(sessions)
    ]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
        go.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(timeout=600)
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return [ms for per in latencies for ms in per], wall


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def check_page(response: requests.Response, parent: Parent) -> None:
    assert response.status_code == 200, response.status_code
    text = response.text
    assert all(name in text for name in parent.child_names), "a child is missing"
    assert "Go to PaySchools" in text


def check_static(response: requests.Response, parent: Parent) -> None:
    assert response.status_code == 200 and response.content, response.status_code


def run() -> list[Result]:
    integration, parents = stage()
    call_command("collectstatic", interactive=False, verbosity=0)
    database_url = os.environ["DATABASE_URL"]
    connection.close()  # the server's workers get the database to themselves
    try:
        with gunicorn(database_url) as server:
            page = f"{server.base}/portal/"
            sessions = [(signed_in(server.base, p), p) for p in parents]
            cpu_before = server.cpu_seconds()
            page_ms, page_wall = load(sessions, page, check_page)
            cpu_per_request = (server.cpu_seconds() - cpu_before) / len(page_ms)
            floor_ms, _ = load(sessions, server.base + STATIC_PATH, check_static)
            paced_ms, _ = load(
                sessions, page, check_page, requests_each=PACED_REQUESTS, interval_s=PACED_S
            )
            for session, _parent in sessions:
                session.close()
    finally:
        Integration.objects.filter(pk=integration.pk).delete()
    n = len(page_ms)
    assert n == PARENTS * REQUESTS_PER_PARENT and len(floor_ms) == n
    real, floor = p95(page_ms), p95(floor_ms)
    return [
        result("portal_p95_ms", real, "ms", target=TARGET_P95_MS, n=n),
        result("portal_p50_ms", statistics.median(page_ms), "ms", n=n),
        result("portal_floor_p95_ms", floor, "ms", n=n),
        ratio("portal_p95_ratio", real, floor, n=n),
        result("portal_rps", n / page_wall, "req/s", n=n, higher_is_better=True),
        # Work behind one page (gunicorn workers only: not PostgreSQL, not the load).
        result("portal_server_cpu_ms", cpu_per_request * 1000, "ms", n=n),
        result("portal_paced_p95_ms", p95(paced_ms), "ms", n=len(paced_ms)),
    ]
