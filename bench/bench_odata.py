"""The OData refunds feed's benchmark (issue 14): a vendor's due-refunds query over 200,000
refunds, over real HTTP to gunicorn.

Stage: 2,000 students of the bench database (`data.ensure_students`), each with an
enrollment period and one award from one of 10 fund sources; 200,000 refunds (made by
COPY) spread over a year of due dates, 70 % not processed (N) and 30 % selected (S), each
tied to its student's award; an enabled Partner API integration with an API user in the
"API - Student Accounts" group and an application key.

Serve: gunicorn as the partner API benchmark's (`bench_partner_api.started_gunicorn`:
gthread, keep-alive); BENCH_ODATA_CLIENTS (2) clients, each with one `requests.Session`,
query back to back.

* `partner_api.odata_refunds_p95_ms` (target 100): the 95th percentile latency of
  `GET /api/odata/Refunds?$filter=Status eq 'N' and DueDate le <date> and
  StudentAward/FundSourceId eq <id>&$top=100&$orderby=DueDate`, the fund source and date
  varying per request; every answer checked (200, 100 rows, all N, in due-date order).
* `partner_api.odata_refunds_p50_ms`, `partner_api.odata_floor_p95_ms` (a static file
  through the same gunicorn: the round trip with no view behind it) and
  `partner_api.odata_refunds_p95_ratio` (real / floor).
* `partner_api.odata_server_cpu_ms_per_query`: gunicorn's workers' CPU per query.
The refunds, awards and fund sources it made are deleted afterwards.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from datetime import date, timedelta

import requests
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from apps.accounting.models import EnrollmentPeriod, FundSource, Refund, StudentAward
from apps.partner_api.services import api_key_issue, api_user_create
from apps.vendors.models import Integration
from bench import Result, data, ratio, result
from bench.bench_partner_api import started_gunicorn
from bench.bench_portal import STATIC_PATH

STUDENTS = 2_000
REFUNDS = int(os.environ.get("BENCH_ODATA_REFUNDS", "200000"))
SOURCES = 10
CLIENTS = int(os.environ.get("BENCH_ODATA_CLIENTS", "2"))
QUERIES_PER_CLIENT = int(os.environ.get("BENCH_ODATA_QUERIES", "250"))
WARMUP_PER_CLIENT = 10
FIRST_DUE = date(2025, 7, 1)
TAG = "odata-bench"
PATH = "/api/odata/Refunds"


def stage() -> tuple[str, list[int]]:
    """(application key, fund source ids)."""
    school, students = data.ensure_students(STUDENTS)
    sources = [
        FundSource.objects.get_or_create(code=f"OB{i}", defaults={"name": f"Bench fund {i}"})[0]
        for i in range(SOURCES)
    ]
    if not StudentAward.objects.filter(fund_source__in=sources).exists():
        EnrollmentPeriod.objects.bulk_create(
            EnrollmentPeriod(student_id=s, school=school, name=TAG, start_date=FIRST_DUE)
            for s in students
        )
        periods = dict(EnrollmentPeriod.objects.filter(name=TAG).values_list("student_id", "pk"))
        StudentAward.objects.bulk_create(
            StudentAward(
                student_id=s,
                enrollment_period_id=periods[s],
                fund_source=sources[i % SOURCES],
                award_year="2025-26",
            )
            for i, s in enumerate(students)
        )
    awards = list(
        StudentAward.objects.filter(fund_source__in=sources).values_list(
            "pk", "student_id", "fund_source_id"
        )
    )
    if not Refund.objects.filter(reason=TAG).exists():
        now = timezone.now()
        data.copy_rows(
            "accounting_refund",
            [
                "student_id",
                "amount",
                "due_date",
                "fund_source_id",
                "student_award_id",
                "status",
                "reason",
                "created_at",
                "updated_at",
            ],
            (
                (
                    awards[i % len(awards)][1],
                    f"{10 + (i * 37) % 490}.{i % 100:02d}",
                    FIRST_DUE + timedelta(days=(i * 7919) % 365),
                    awards[i % len(awards)][2],
                    awards[i % len(awards)][0],
                    "S" if i % 10 < 3 else "N",
                    TAG,
                    now,
                    now,
                )
                for i in range(REFUNDS)
            ),
        )
        data.analyze("accounting_refund", "accounting_studentaward")
    integration, _ = Integration.objects.get_or_create(
        slug="odata-bench",
        defaults={
            "vendor_kind": "partnerapi",
            "name": "OData (bench)",
            "enabled": True,
            "service_url": "https://vendor.example.org/",
        },
    )
    user, _ = get_user_model().objects.get_or_create(
        username="odata-bench", defaults={"is_staff": True}
    )
    api_user = api_user_create(
        user=user, integration=integration, groups=("API - Student Accounts",)
    )
    return api_key_issue(api_user=api_user, name="bench")[1], [s.pk for s in sources]


def unstage() -> None:
    Refund.objects.filter(reason=TAG).delete()
    StudentAward.objects.filter(fund_source__code__startswith="OB").delete()
    EnrollmentPeriod.objects.filter(name=TAG).delete()
    FundSource.objects.filter(code__startswith="OB").delete()


def params(k: int, sources: list[int]) -> dict[str, str]:
    due = FIRST_DUE + timedelta(days=120 + (k * 13) % 200)
    source = sources[k % len(sources)]
    return {
        "$filter": f"Status eq 'N' and DueDate le {due.isoformat()} and "
        f"StudentAward/FundSourceId eq {source}",
        "$top": "100",
        "$orderby": "DueDate",
    }


def clients(base: str, key: str, sources: list[int], n: int, path: str = PATH) -> list[float]:
    """Each client queries back to back; the latencies (ms). Every answer is checked."""
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []

    def run(c: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Api-Key {key}"
        try:
            for k in range(n):
                query = params(c * n + k, sources) if path == PATH else None
                started = time.perf_counter()
                response = session.get(base + path, params=query, timeout=60)
                latencies[c].append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise AssertionError(f"{response.status_code}: {response.text[:300]}")
                if path == PATH:
                    rows = response.json()["value"]
                    dues = [r["DueDate"] for r in rows]
                    if len(rows) != 100 or {r["Status"] for r in rows} != {"N"}:
                        raise AssertionError(f"{len(rows)} rows, statuses {set(dues)}")
                    if dues != sorted(dues):
                        raise AssertionError("rows are not in due-date order")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    if errors:
        raise errors[0]
    return [ms for per in latencies for ms in per]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def run() -> list[Result]:
    from django.core.management import call_command

    key, sources = stage()
    call_command("collectstatic", interactive=False, verbosity=0)
    connection.close()
    try:
        with started_gunicorn(os.environ["DATABASE_URL"]) as server:
            clients(server.base, key, sources, WARMUP_PER_CLIENT)
            cpu_before = server.cpu_seconds()
            latencies = clients(server.base, key, sources, QUERIES_PER_CLIENT)
            cpu = server.cpu_seconds() - cpu_before
            floor_ms = clients(server.base, key, sources, QUERIES_PER_CLIENT, STATIC_PATH)
    finally:
        connection.close()
        unstage()
    n = len(latencies)
    real, floor = p95(latencies), p95(floor_ms)
    return [
        result("partner_api.odata_refunds_p95_ms", real, "ms", target=100.0, n=n),
        result("partner_api.odata_refunds_p50_ms", statistics.median(latencies), "ms", n=n),
        result("partner_api.odata_floor_p95_ms", floor, "ms", n=len(floor_ms)),
        ratio("partner_api.odata_refunds_p95_ratio", real, floor, n=n),
        result("partner_api.odata_server_cpu_ms_per_query", cpu * 1000 / n, "ms", n=n),
    ]
