"""Slow and failing vendors contained (issue 10, items 5 and 6), measured on real parts:
both vendor sandboxes on loopback, PostgreSQL and, for deliveries, one real Celery worker
(`bench_sync.celery_worker`, consuming the default and `delivery` queues).

* `isolation.other_vendor_push_p99_ms` (target 1000): Community Pass's commit-to-vendor
  latency of single fees (`PUSH_N`, one every 40 ms, each `fee_create` in its own
  transaction) while PaySchools is down with a backlog of 10,000 fees waiting for it.
  Floor, in the same run: the same latency with PaySchools up and nothing waiting
  (`isolation.other_vendor_push_floor_p99_ms`), and the ratio of the two.
* `admin_student_page_two_slow_vendors_s` (target 2.5): the median time of the staff's
  student page (admin change view, as a fees clerk, `PAGE_N` times) while both vendors take
  10 s to answer; the page's deadline is FEESYNC_STUDENT_PAGE_DEADLINE_SECONDS (2 s).
  Floor: the same page with both vendors answering at once
  (`admin_student_page_floor_s`), and the ratio.
"""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.test import Client
from django.urls import reverse

from apps.categories.models import FeeCategory
from apps.fees.selectors import ledger_report
from apps.fees.services import Origin, fee_create
from apps.students.models import Student
from apps.vendors import engine
from apps.vendors.models import Integration, OutboxItem
from apps.vendors.sandboxes.client import SandboxControl
from apps.vendors.sandboxes.server import SandboxServer
from bench import Result, data, ratio, result, stopwatch
from bench.bench_sync import (
    _credentials,
    _p,
    _wait,
    bench_broker,
    celery_worker,
    running_sandbox,
)

BACKLOG_N = 10_000
PUSH_N = 200
PUSH_WARMUP = 10
PUSH_SPACING_S = 0.040
PAGE_N = 5
SLOW_MS = 10_000


def _integration(kind: str, server: SandboxServer, category: FeeCategory) -> Integration:
    integration = Integration(
        vendor_kind=kind,
        slug=f"bench-{kind}",
        name=f"Bench {kind}",
        enabled=True,
        service_url=server.url,
        timeout_seconds=30,
        import_after=data.FEE_DATE,
    )
    integration.credentials = _credentials(kind)
    integration.save()
    integration.categories.set([category])
    return integration


def _cleanup() -> None:
    Integration.objects.filter(slug__startswith="bench-").delete()
    data.reset_ledger()


def _push_latencies(
    server: SandboxServer, students: list[Student], category: FeeCategory, cat: data.Catalog
) -> list[float]:
    """Commit-to-vendor milliseconds of one fee per student, one every PUSH_SPACING_S."""
    committed: dict[str, float] = {}
    origin = Origin(user=cat.clerk)
    next_at = time.monotonic()
    for student in students:
        stamp: dict[str, float] = {}
        with transaction.atomic():
            transaction.on_commit(lambda stamp=stamp: stamp.setdefault("t", time.time()))
            fee = fee_create(
                student=student,
                category=category,
                merchant_account=cat.merchant_account,
                description="Field trip",
                amount=Decimal("25.00"),
                fee_date=data.FEE_DATE,
                due_date=data.DUE_DATE,
                origin=origin,
            )
        committed[fee.reference] = stamp["t"]
        next_at += PUSH_SPACING_S
        time.sleep(max(0.0, next_at - time.monotonic()))
    receipts = _wait(
        lambda: (r := server.state.receipts()) and all(ref in r for ref in committed) and r,
        timeout=180,
        what="every fee at the vendor",
    )
    return [(receipts[ref] - t) * 1000 for ref, t in committed.items()]


def isolation_other_vendor_push() -> list[Result]:
    """Community Pass push latency while PaySchools is down with 10,000 fees waiting."""
    cat = data.catalog()
    data.reset_ledger()
    other, _ = FeeCategory.objects.get_or_create(
        code="BENCH-CP", defaults={"description": "Benchmark fee (Community Pass)"}
    )
    _, student_ids = data.ensure_students(BACKLOG_N)
    students = list(Student.objects.filter(pk__in=student_ids).order_by("pk"))
    needed = PUSH_WARMUP + 2 * PUSH_N
    try:
        with (
            running_sandbox("payschools") as ps_server,
            running_sandbox("communitypass") as cp_server,
            bench_broker(),
            celery_worker(),
        ):
            ps = _integration("payschools", ps_server, cat.category)
            _integration("communitypass", cp_server, other)
            # Warm-up, then the floor: PaySchools up, nothing waiting.
            warm = _push_latencies(cp_server, students[:PUSH_WARMUP], other, cat)
            assert len(warm) == PUSH_WARMUP
            calm = students[PUSH_WARMUP : PUSH_WARMUP + PUSH_N]
            floor = _push_latencies(cp_server, calm, other, cat)

            # Now PaySchools goes down with 10,000 fees waiting for it.
            SandboxControl(ps_server.url, timeout=30).faults("down")
            with transaction.atomic():
                fee_ids = data.copy_charges(student_ids, catalog=cat)
                assert engine.outbox_enqueue(integration=ps, fee_ids=fee_ids) == BACKLOG_N
            _wait(
                lambda: Integration.objects.get(pk=ps.pk).consecutive_failures >= 1,
                timeout=60,
                what="PaySchools deliveries to fail",
            )
            real = _push_latencies(cp_server, students[PUSH_WARMUP + PUSH_N : needed], other, cat)
            waiting = OutboxItem.objects.filter(integration=ps).count()
            assert waiting == BACKLOG_N, waiting  # still down: nothing lost, nothing sent
            assert len(real) == PUSH_N and min(real) > 0
            report = ledger_report()
            assert report.ok, report.breaches[:5]
    finally:
        _cleanup()
    p99, floor99 = _p(real, 99), _p(floor, 99)
    return [
        result("isolation.other_vendor_push_p99_ms", p99, "ms", target=1000, n=PUSH_N),
        result("isolation.other_vendor_push_p50_ms", _p(real, 50), "ms", n=PUSH_N),
        result("isolation.other_vendor_push_floor_p99_ms", floor99, "ms", n=PUSH_N),
        ratio("isolation.other_vendor_push_p99_ratio", p99, floor99, n=PUSH_N),
    ]


def _page_clerk() -> object:
    user, _ = get_user_model().objects.get_or_create(
        username="bench-page-clerk", defaults={"is_staff": True}
    )
    user.groups.add(Group.objects.get(name="Fees clerk"))
    return user


def _page_times(client: Client, url: str) -> list[float]:
    times = []
    for _ in range(PAGE_N):
        with stopwatch() as sw:
            page = client.get(url)
        assert page.status_code == 200, page.status_code
        times.append(sw.seconds)
    return times


def admin_student_page_two_slow_vendors() -> list[Result]:
    """The staff's student page while both vendors take 10 s to answer."""
    cat = data.catalog()
    data.reset_ledger()
    other, _ = FeeCategory.objects.get_or_create(
        code="BENCH-CP", defaults={"description": "Benchmark fee (Community Pass)"}
    )
    _, student_ids = data.ensure_students(10)
    client = Client()
    client.force_login(_page_clerk())
    url = reverse("admin:students_student_change", args=[student_ids[0]])
    try:
        with (
            running_sandbox("payschools") as ps_server,
            running_sandbox("communitypass") as cp_server,
            bench_broker(),
        ):
            _integration("payschools", ps_server, cat.category)
            _integration("communitypass", cp_server, other)
            client.get(url)  # warm-up: imports, the WSDL, connections
            floor = _page_times(client, url)
            controls = [SandboxControl(s.url, timeout=30) for s in (ps_server, cp_server)]
            for control in controls:
                control.faults("slow", delay_ms=SLOW_MS)
            real = _page_times(client, url)
            page = client.get(url).content.decode()
            notes = page.count("could not be checked within")
            assert notes == 2, notes  # one note per vendor
            for control in controls:
                control.faults("ok")
    finally:
        _cleanup()
    median, floor_median = statistics.median(real), statistics.median(floor)
    return [
        result("admin_student_page_two_slow_vendors_s", median, "s", target=2.5, n=PAGE_N),
        result("admin_student_page_two_slow_vendors_max_s", max(real), "s", n=PAGE_N),
        result("admin_student_page_floor_s", floor_median, "s", n=PAGE_N),
        ratio("admin_student_page_two_slow_vendors_ratio", median, floor_median, n=PAGE_N),
    ]


BENCHMARKS = [isolation_other_vendor_push, admin_student_page_two_slow_vendors]
