"""Setup state that agrees with itself (issue 11, item 3): a task whose prerequisite is
missing is off and says why, in its schedule and when it would run; "Last run" tells of
deliveries and pulls made on events; an enabled integration says whether it was tested."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from apps.vendors import engine
from apps.vendors.jobs import task_run
from apps.vendors.models import Integration, TaskRun
from apps.vendors.selectors import task_rows
from apps.vendors.services import (
    IntegrationError,
    integration_task_set_enabled,
    integration_update_connection,
    integration_update_parent_options,
)
from tests.factories import make_fee
from tests.sync.conftest import Sandbox, integration_for

pytestmark = pytest.mark.django_db
IN_SCOPE = dt.date(2026, 9, 1)


@pytest.fixture
def payschools_box():
    box = Sandbox("payschools")
    yield box
    box.stop()


@pytest.fixture
def communitypass_box():
    box = Sandbox("communitypass")
    yield box
    box.stop()


def beat_row(integration: Integration, label: str) -> PeriodicTask:
    return PeriodicTask.objects.get(name=f"{integration.slug}: {label}")


def row(integration: Integration, task: str):
    return next(r for r in task_rows(integration) if r.name == task)


def test_lunch_sync_runs_only_while_sync_lunch_balance_is_checked(payschools_box):
    integration = integration_for(payschools_box)  # "Sync lunch balance" unchecked

    assert beat_row(integration, "Lunch balance sync").enabled is False
    assert "Sync lunch balance" in row(integration, "sync-lunch").off_reason
    assert task_run(integration=integration, task="sync-lunch") is None
    assert not TaskRun.objects.filter(task="sync-lunch").exists()
    with pytest.raises(IntegrationError, match="cannot be switched on.*Sync lunch balance"):
        integration_task_set_enabled(integration=integration, task="sync-lunch", enabled=True)

    integration_update_parent_options(integration=integration, sync_lunch_balance=True)

    assert beat_row(integration, "Lunch balance sync").enabled is True
    assert row(integration, "sync-lunch").off_reason == ""
    run = task_run(integration=integration, task="sync-lunch")
    assert run is not None and run.outcome == "ok", run and run.error

    integration_update_parent_options(integration=integration, sync_lunch_balance=False)
    assert beat_row(integration, "Lunch balance sync").enabled is False
    assert task_run(integration=integration, task="sync-lunch") is None


def test_a_schedule_staff_switched_off_stays_off_when_the_prerequisite_returns(payschools_box):
    integration = integration_for(payschools_box, sync_lunch_balance=True)
    integration_task_set_enabled(integration=integration, task="sync-lunch", enabled=False)

    integration_update_parent_options(integration=integration, sync_lunch_balance=False)
    integration_update_parent_options(integration=integration, sync_lunch_balance=True)

    assert beat_row(integration, "Lunch balance sync").enabled is False
    assert row(integration, "sync-lunch").off_reason == ""  # off by choice, may go on again


def test_demographics_export_is_off_until_a_server_is_set_up(payschools_box):
    integration = integration_for(payschools_box)

    assert beat_row(integration, "Demographics export").enabled is False
    assert "demographics server" in row(integration, "export-demographics").off_reason
    assert task_run(integration=integration, task="export-demographics") is None

    integration_update_connection(
        integration=integration,
        credentials={},
        transfer_protocol="ftp",
        transfer_host="127.0.0.1",
        transfer_port=2121,
    )

    assert beat_row(integration, "Demographics export").enabled is True
    assert row(integration, "export-demographics").off_reason == ""


def test_get_balances_runs_only_while_the_balance_is_shown_or_locks_the_portal(
    communitypass_box,
):
    integration = integration_for(communitypass_box)

    assert beat_row(integration, "Get balances").enabled is False
    assert (
        "neither shown to parents nor used to lock" in row(integration, "get-balances").off_reason
    )
    assert task_run(integration=integration, task="get-balances") is None

    integration_update_parent_options(integration=integration, lock_portal_on_balance=True)
    assert beat_row(integration, "Get balances").enabled is True
    run = task_run(integration=integration, task="get-balances")
    assert run is not None and run.outcome == "ok", run and run.error

    integration_update_parent_options(
        integration=integration, lock_portal_on_balance=False, show_vendor_balance=True
    )
    assert beat_row(integration, "Get balances").enabled is True
    integration_update_parent_options(integration=integration, show_vendor_balance=False)
    assert beat_row(integration, "Get balances").enabled is False


def test_last_run_tells_of_fees_sent_on_change_and_payments_pulled_for_a_page(payschools_box):
    integration = integration_for(payschools_box)
    task_run(integration=integration, task="send-fees")
    task_run(integration=integration, task="get-payments")
    assert row(integration, "send-fees").between_runs == ""

    fee = make_fee(fee_date=IN_SCOPE)  # a change: delivered on commit, not by a run
    engine.deliver(integration_id=integration.pk)
    engine.payments_pull(integration=integration, student_ids=[fee.student.student_number])
    integration.refresh_from_db()

    assert fee.reference in payschools_box.fees()
    assert row(integration, "send-fees").between_runs.startswith("Fees last sent ")
    assert row(integration, "get-payments").between_runs.startswith("Payments last checked ")
    assert TaskRun.objects.filter(task="send-fees").count() == 1


def test_an_enabled_integration_without_tests_says_so_on_its_setup_page(
    payschools_box, client, district_admin
):
    integration = integration_for(
        payschools_box, enabled_at=dt.datetime(2026, 11, 30, 14, 5, tzinfo=dt.UTC)
    )
    client.force_login(district_admin)

    page = client.get(reverse("admin:vendors_integration_change", args=[integration.pk]))

    text = page.content.decode()
    assert "Enabled on" in text and "without tests" in text
    Integration.objects.filter(pk=integration.pk).update(test_pull_ok=True, test_push_ok=True)
    page = client.get(reverse("admin:vendors_integration_change", args=[integration.pk]))
    assert "without tests" not in page.content.decode()
