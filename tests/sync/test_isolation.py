"""Slow and failing vendors are contained (issue 10, items 5 and 6): a student's page waits
one deadline however many vendors are slow, and one vendor's outage never delays another's
deliveries. On the real sandboxes, and (for the outage) a real worker."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.fees.selectors import ledger_report
from apps.vendors import engine, tasks
from apps.vendors.models import Integration, OutboxItem
from bench import data as bench_data
from tests.brokers import queue_length
from tests.factories import CategoryFactory, StudentFactory, make_fee

from .conftest import Sandbox, integration_for, wait_for

IN_SCOPE = dt.date(2026, 9, 1)


def _messages(page: Any) -> list[str]:
    return [str(m) for m in page.context["messages"]] if page.context else []


# --- the student's page: one deadline -------------------------------------------------------


@pytest.mark.django_db
def test_both_vendors_slow_the_students_page_renders_within_its_deadline_with_two_notes(
    both_sandboxes: dict[str, Sandbox], clerk, client, settings
):
    settings.FEESYNC_STUDENT_PAGE_DEADLINE_SECONDS = 2
    student = StudentFactory()
    for box in both_sandboxes.values():
        integration_for(box, timeout_seconds=30)  # its own timeout is far longer than the page's
        box.faults("slow", delay_ms=10000)
    client.force_login(clerk)
    started = time.monotonic()
    page = client.get(reverse("admin:students_student_change", args=[student.pk]))
    took = time.monotonic() - started
    assert page.status_code == 200
    # The page did not wait for either vendor (each answers after 10 s); how close it came to
    # its 2-second deadline is the benchmark's (admin_student_page_two_slow_vendors_s): a
    # busy machine may add seconds of its own here.
    assert took < 10, took
    notes = [m for m in _messages(page) if "could not be checked within 2 seconds" in m]
    assert sorted(n.split()[2] for n in notes) == ["Community", "PaySchools"], notes
    assert (
        "Payments at PaySchools could not be checked within 2 seconds; payments made there "
        "may not show yet." in notes[0] + notes[1]
    )


@pytest.mark.django_db
def test_community_pass_retries_end_with_the_deadline_of_the_page_that_called(
    both_sandboxes: dict[str, Sandbox], clerk, client, settings
):
    settings.FEESYNC_STUDENT_PAGE_DEADLINE_SECONDS = 2
    box = both_sandboxes["communitypass"]
    # Left to itself this adapter would retry a 503 for its whole 20-second budget.
    integration_for(box, options={"max_retries": 40, "backoff_base": 1.0, "backoff_cap": 1.0})
    box.faults("error")  # a 500 without Retry-After: retried, about a second apart
    student = StudentFactory()
    client.force_login(clerk)
    started = time.monotonic()
    page = client.get(reverse("admin:students_student_change", args=[student.pk]))
    took = time.monotonic() - started
    # Left to its budget it would retry for about 20 s; well before that is the proof (the
    # busy machine's own delays are not).
    assert page.status_code == 200 and took < 12, took
    assert any(
        m.startswith("Payments at Community Pass could not be checked") for m in _messages(page)
    ), _messages(page)


@pytest.mark.django_db
def test_a_vendor_that_answers_in_time_is_recorded_beside_a_slow_one(
    both_sandboxes: dict[str, Sandbox], clerk, client, settings
):
    settings.FEESYNC_STUDENT_PAGE_DEADLINE_SECONDS = 2
    trips, lunch = CategoryFactory(), CategoryFactory()
    ps = integration_for(both_sandboxes["payschools"], categories=[lunch])
    integration_for(both_sandboxes["communitypass"], categories=[trips])
    fee = make_fee(category=lunch, amount="20.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=ps.pk)
    both_sandboxes["payschools"].control("pay", fee_ref=fee.reference, amount="5.00")
    both_sandboxes["communitypass"].faults("slow", delay_ms=10000)
    client.force_login(clerk)
    page = client.get(reverse("admin:students_student_change", args=[fee.student.pk]))
    texts = _messages(page)
    assert "1 payment brought in from PaySchools." in texts
    assert any("Community Pass could not be checked within 2 seconds" in t for t in texts)
    fee.refresh_from_db()
    assert fee.balance == Decimal("15.00")


# --- the outbox: one task per integration, one delivery at a time -------------------------------


@pytest.mark.django_db
def test_one_sweep_queues_exactly_one_delivery_task_per_integration(
    both_sandboxes: dict[str, Sandbox], monkeypatch
):
    ps_box, cp_box = both_sandboxes["payschools"], both_sandboxes["communitypass"]
    cats = [CategoryFactory() for _ in range(4)]
    integrations = [
        integration_for(ps_box, slug="ps-a", categories=[cats[0]]),
        integration_for(ps_box, slug="ps-b", categories=[cats[1]]),
        integration_for(cp_box, slug="cp-a", categories=[cats[2]]),
    ]
    backing_off = integration_for(cp_box, slug="cp-b", categories=[cats[3]])
    Integration.objects.filter(pk=backing_off.pk).update(
        backoff_until=timezone.now() + dt.timedelta(minutes=5)
    )
    # A backlog for each: fee_create queues them; this test's transaction never commits, so
    # nothing is delivered until the sweep.
    student = StudentFactory()
    for category in cats:
        for _ in range(25):
            make_fee(student=student, category=category, fee_date=IN_SCOPE)
    assert OutboxItem.objects.count() == 100

    queued: list[int] = []
    # Counting the queueing itself (the broker, not an adapter's transport, is left out).
    monkeypatch.setattr(tasks.deliver_outbox, "delay", lambda pk: queued.append(pk))
    tasks.sweep_outbox()
    assert sorted(queued) == sorted(i.pk for i in integrations)


@pytest.mark.django_db
def test_a_second_delivery_for_the_same_integration_returns_at_once(
    both_sandboxes: dict[str, Sandbox],
):
    box = both_sandboxes["communitypass"]
    integration = integration_for(box)
    make_fee(fee_date=IN_SCOPE)
    Integration.objects.filter(pk=integration.pk).update(
        delivering_until=timezone.now() + dt.timedelta(seconds=60)
    )
    report = engine.deliver(integration_id=integration.pk)
    assert report.busy and report.sent == 0
    assert OutboxItem.objects.filter(integration=integration).count() == 1
    # Its lease run out (a crashed worker), the next delivery takes over.
    Integration.objects.filter(pk=integration.pk).update(
        delivering_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert engine.deliver(integration_id=integration.pk).sent == 1
    assert Integration.objects.get(pk=integration.pk).delivering_until is None


@pytest.mark.django_db
def test_a_bounded_delivery_queues_the_next_for_the_rest(both_sandboxes: dict[str, Sandbox]):
    box = both_sandboxes["communitypass"]
    integration = integration_for(box)
    student = StudentFactory()
    fees = [make_fee(student=student, fee_date=IN_SCOPE) for _ in range(450)]
    report = engine.deliver(integration_id=integration.pk, max_batches=1)
    # One batch here; the rest by the task it queued (run here: tasks are eager in tests).
    assert report.sent == 200
    assert not OutboxItem.objects.exists()
    assert {f.reference for f in fees} <= set(box.fees())


@pytest.mark.slow
@pytest.mark.all_brokers
def test_payschools_down_with_a_backlog_of_10000_does_not_delay_community_pass(
    live_worker, both_sandboxes: dict[str, Sandbox]
):
    ps_box, cp_box = both_sandboxes["payschools"], both_sandboxes["communitypass"]
    catalog = bench_data.catalog()
    trips = CategoryFactory()
    ps = integration_for(ps_box, categories=[catalog.category], import_after=bench_data.FEE_DATE)
    integration_for(cp_box, categories=[trips])
    ps_box.faults("down")
    student = StudentFactory()
    with transaction.atomic():
        fee_ids = bench_data.copy_charges([student.pk] * 10_000, catalog=catalog)
        assert engine.outbox_enqueue(integration=ps, fee_ids=fee_ids) == 10_000
    wait_for(
        lambda: Integration.objects.get(pk=ps.pk).consecutive_failures >= 1,
        what="PaySchools deliveries to fail and back off",
    )
    # The sweeper runs every second here: the delivery queue never fills with tasks for
    # the fees waiting (one per integration per sweep at most, none while backing off).
    lengths = []
    for _ in range(15):
        lengths.append(queue_length(live_worker.broker, "delivery"))
        time.sleep(0.2)
    assert max(lengths) <= 2, lengths
    for _ in range(3):
        fee = make_fee(student=student, category=trips, fee_date=IN_SCOPE)
        started = time.monotonic()
        wait_for(lambda fee=fee: fee.reference in cp_box.fees(), what="the fee at Community Pass")
        # Generous: the benchmark (isolation.other_vendor_push_p99_ms) measures the figure;
        # the outage of the issue delayed the other vendor by about a minute.
        assert time.monotonic() - started < 30
    assert OutboxItem.objects.filter(integration=ps).count() == 10_000
    assert ledger_report().ok
