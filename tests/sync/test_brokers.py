"""Every broker FeeSync supports (issue 16, item 4; docs/brokers.md).

- Two Celery workers at once, the README's scale-out, on Redis and on RabbitMQ: a backlog at
  two vendors drains and concurrent pulls of the same payments run on both workers, with
  nothing lost or doubled.
- The embedded filesystem broker `make run` uses: a fee a clerk creates on the staff site
  reaches the vendor through a real worker on that broker.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from apps.fees.models import Fee, LedgerEntry
from apps.vendors.models import Integration, OutboxItem, TaskRun
from apps.vendors.tasks import run_integration_task
from config.brokers import make_filesystem_dirs
from tests.admin_helpers import csrf_client, submit
from tests.brokers import Broker, producing_to
from tests.factories import CategoryFactory, MerchantAccountFactory, StudentFactory, make_fee

from .conftest import Sandbox, Worker, database_url_for_workers, integration_for, wait_for

IN_SCOPE = dt.date(2026, 9, 1)
D = Decimal

pytestmark = pytest.mark.slow


@pytest.mark.all_brokers
def test_two_workers_drain_a_backlog_and_pull_at_once_with_nothing_lost_or_doubled(
    live_worker: Worker, second_worker: Worker, both_sandboxes: dict[str, Sandbox]
):
    ps_box, cp_box = both_sandboxes["payschools"], both_sandboxes["communitypass"]
    trips, books = CategoryFactory(code="TRIP"), CategoryFactory(code="BOOK")
    ps = integration_for(ps_box, categories=[trips])
    cp = integration_for(cp_box, categories=[books])
    since = {w.name: w.log_size() for w in (live_worker, second_worker)}

    # A backlog at both vendors while they are down...
    for box in (ps_box, cp_box):
        box.faults("down")
    student, account = StudentFactory(), MerchantAccountFactory()
    fees = {
        integration.pk: [
            make_fee(
                student=student,
                category=category,
                merchant_account=account,
                fee_date=IN_SCOPE,
                amount="10.00",
            )
            for _ in range(20)
        ]
        for integration, category in ((ps, trips), (cp, books))
    }
    wait_for(
        lambda: all(i.consecutive_failures > 0 for i in Integration.objects.all()),
        what="both vendors' failures to be recorded",
    )
    # ...drains through both workers once they answer again (slowly: deliveries take time).
    for box in (ps_box, cp_box):
        box.faults("slow", delay_ms=300)
    Integration.objects.update(backoff_until=None)
    wait_for(lambda: not OutboxItem.objects.exists(), timeout=180, what="the backlog to drain")
    for integration, box in ((ps, ps_box), (cp, cp_box)):
        held = box.fees()  # asserts no fee is there twice
        assert set(held) == {f.reference for f in fees[integration.pk]}
        assert {held[f]["amount"] for f in held} == {"10.00"}

    # Parents pay three fees at each vendor; two pulls per vendor are queued at once, and the
    # vendor is slow, so the two workers run them side by side.
    paid = {i.pk: fees[i.pk][:3] for i in (ps, cp)}
    for integration, box in ((ps, ps_box), (cp, cp_box)):
        for fee in paid[integration.pk]:
            box.control("pay", fee_ref=fee.reference, amount="4.00")
    for box in (ps_box, cp_box):
        box.faults("slow", delay_ms=800)
    for integration in (ps, cp):
        for _ in range(2):
            run_integration_task.delay(integration.pk, "get-payments", trigger="two workers")
    wait_for(
        lambda: TaskRun.objects.filter(task="get-payments", finished__isnull=False).count() == 4,
        timeout=180,
        what="the four pulls to finish",
    )
    for integration in (ps, cp):
        runs = TaskRun.objects.filter(integration=integration, task="get-payments")
        assert all(r.outcome == "ok" for r in runs), [(r.outcome, r.error) for r in runs]
        assert sum(r.counts["recorded"] for r in runs) == 3
        for fee in paid[integration.pk]:
            entries = LedgerEntry.objects.filter(
                fee=fee, external_source=integration.external_source
            )
            assert entries.count() == 1, f"{fee.reference}: {list(entries)}"
            fee.refresh_from_db()
            assert fee.balance == D("6.00")
    assert Fee.objects.filter(balance=D("10.00")).count() == 34

    # Both workers took work: deliveries or pulls (each worker's own log says which tasks it
    # received; the sweeper's tasks, queued by the session worker's beat, do not count).
    work = {
        w.name: [t for t in w.tasks_received(since[w.name]) if not t.endswith(".sweep_outbox")]
        for w in (live_worker, second_worker)
    }
    assert all(work.values()), {name: len(tasks) for name, tasks in work.items()}


def test_make_runs_filesystem_broker_delivers_a_fee_a_clerk_creates(
    transactional_db, clerk, tmp_path: Path, settings
):
    """`make run` needs no broker server: kombu's filesystem transport in a folder shared by
    the web process and the worker. Here the folder is a temporary one, the worker the
    product's (with its embedded beat), the fee made on the staff site's add form."""
    from config.celery import app

    broker = Broker(name="filesystem", url="filesystem://", filesystem_dir=tmp_path / "broker")
    make_filesystem_dirs(tmp_path / "broker")
    # The only worker: the session's (on Redis or RabbitMQ, sharing the database) would
    # deliver the fee as well, through its sweeper. The next test using it restarts it.
    for other in list(Worker.running):
        other.stop()
    box = Sandbox("communitypass")
    worker = Worker(database_url_for_workers(), broker, name="filesystem")
    try:
        with producing_to(app, broker):
            app.conf.task_always_eager = False
            settings.CELERY_TASK_ALWAYS_EAGER = False
            worker.start()
            integration = integration_for(box)
            student = StudentFactory()
            response = submit(
                csrf_client(clerk),
                f"/admin/fees/fee/add/?student={student.pk}",
                {
                    "student": str(student.pk),
                    "category": str(CategoryFactory().pk),
                    "merchant_account": str(MerchantAccountFactory().pk),
                    "description": "Library fine",
                    "amount": "3.25",
                    "fee_date": "2026-09-15",
                    "due_date": "2026-10-01",
                },
                follow=True,
            )
            assert response.status_code == 200
            fee = Fee.objects.get(student=student)
            wait_for(
                lambda: fee.reference in box.fees(),
                what=f"{fee.reference} at {integration.vendor_name}",
            )
            wait_for(lambda: not OutboxItem.objects.exists(), what="the outbox to empty")
            held = box.fees()[fee.reference]
            assert (held["amount"], held["student_id"]) == ("3.25", student.student_number)
            assert "apps.vendors.tasks.deliver_outbox" in worker.tasks_received()
    finally:
        worker.stop()
        box.stop()
        app.conf.task_always_eager = True
