"""A task run that failed for any item is not "Succeeded" (issue 11, item 6): succeeded,
partly failed (with counts and the first errors) or failed."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.vendors.display import run_shown
from apps.vendors.jobs import task_run
from apps.vendors.models import TaskRun
from tests.factories import StudentFactory, make_fee

pytestmark = pytest.mark.django_db
IN_SCOPE = dt.date(2026, 9, 1)


def test_a_send_where_the_vendor_refuses_some_fees_is_partly_failed(sandbox, make_integration):
    integration = make_integration(enabled=False)  # nothing sent on commit: the run sends
    good = [make_fee(fee_date=IN_SCOPE) for _ in range(2)]
    bad = make_fee(student=StudentFactory(student_number=""), fee_date=IN_SCOPE)
    integration.enabled = True
    integration.save(update_fields=["enabled"])

    run = task_run(integration=integration, task="send-fees")

    assert run is not None and run.outcome == TaskRun.Outcome.PARTLY
    assert run.counts["acknowledged"] == 2 and run.counts["rejected"] == 1
    assert f"Fee {bad.reference} refused" in run.error
    shown = run_shown(run)
    assert shown.outcome == "Partly failed (1 of 3 failed)" and shown.flag == "warn"
    assert shown.errors[0].startswith(f"Fee {bad.reference} refused")
    assert all(f.reference in sandbox.fees() for f in good)


def test_a_send_while_the_vendor_is_down_failed(sandbox, make_integration):
    integration = make_integration(enabled=False)
    make_fee(fee_date=IN_SCOPE)
    integration.enabled = True
    integration.save(update_fields=["enabled"])
    sandbox.faults("down")

    run = task_run(integration=integration, task="send-fees")

    assert run is not None and run.outcome == TaskRun.Outcome.FAILED
    shown = run_shown(run)
    assert shown.outcome == "Failed" and shown.flag == "bad"
    assert "1 fee not sent" in shown.errors[0]


def test_a_send_with_nothing_failing_succeeded(sandbox, make_integration):
    integration = make_integration()
    make_fee(fee_date=IN_SCOPE)

    run = task_run(integration=integration, task="send-fees")

    assert run is not None and run.outcome == TaskRun.Outcome.OK
    assert run_shown(run).flag == "ok" and run.error == ""
