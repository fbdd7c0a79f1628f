"""Engine behaviour that needs the sandbox but not a worker: bad vendor answers, task runs,
schedules, credentials, and the commands of DESIGN.md's contract."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_celery_beat.models import PeriodicTask

from apps.fees.models import Fee, LedgerEntry
from apps.fees.services import Origin
from apps.vendors import engine
from apps.vendors.jobs import task_run
from apps.vendors.models import Integration, OutboxItem, TaskRun
from apps.vendors.schedules import schedules_sync
from tests.factories import make_fee

pytestmark = pytest.mark.django_db
IN_SCOPE = dt.date(2026, 9, 1)


def _time_passes() -> None:
    """Every backoff has run out."""
    past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    Integration.objects.update(backoff_until=None)
    OutboxItem.objects.update(next_attempt_at=past)


@pytest.mark.parametrize("mode", ["malformed", "fault", "error", "slow", "down"])
def test_bad_vendor_answers_to_a_push_keep_the_change_with_a_plain_error(
    sandbox, make_integration, mode, settings
):
    # A backoff long enough that "immediately" stays true on a busy machine (the suite's
    # default of 0.1-0.2 s could run out between the two deliveries; `_time_passes` ends it).
    settings.FEESYNC_BACKOFF_BASE_SECONDS = 60
    settings.FEESYNC_BACKOFF_CAP_SECONDS = 120
    # A short timeout only where the test is about it ("slow": 5 s is far beyond 3 s however
    # busy the machine); otherwise the suite's generous one, so that a loaded machine's slow
    # answer is never mistaken for the fault under test.
    integration = make_integration(**({"timeout_seconds": 3} if mode == "slow" else {}))
    fee = make_fee(amount="10.00", fee_date=IN_SCOPE)
    sandbox.faults(mode, delay_ms=5000)
    report = engine.deliver(integration_id=integration.pk)
    assert report.failed == 1 and report.acknowledged == 0
    item = OutboxItem.objects.get(fee=fee)
    assert item.state == "pending" and item.attempts == 1
    assert item.last_error and "Traceback" not in item.last_error
    integration.refresh_from_db()
    assert integration.consecutive_failures == 1 and integration.backoff_until
    if mode == "slow":
        assert "3 seconds" in item.last_error  # the integration's timeout, in plain words

    # Backed off: an immediate second delivery does not call the vendor again.
    assert engine.deliver(integration_id=integration.pk).skipped_backoff
    # When the vendor answers again, the change goes through once.
    sandbox.faults("ok")
    _time_passes()
    Integration.objects.filter(pk=integration.pk).update(timeout_seconds=15)
    assert engine.deliver(integration_id=integration.pk).acknowledged == 1
    assert list(sandbox.fees()) == [fee.reference]
    assert not OutboxItem.objects.exists()


@pytest.mark.parametrize("mode", ["malformed", "fault", "error", "down"])
def test_bad_vendor_answers_to_a_pull_fail_the_run_plainly_and_change_nothing(
    sandbox, make_integration, mode
):
    integration = make_integration()
    fee = make_fee(amount="10.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    sandbox.control("pay", fee_ref=fee.reference, amount="4.00")
    sandbox.faults(mode)
    run = task_run(integration=integration, task="get-payments")
    assert run.outcome == TaskRun.Outcome.FAILED
    assert run.error and "Traceback" not in run.error
    assert LedgerEntry.objects.filter(kind="payment").count() == 0
    integration.refresh_from_db()
    assert integration.payment_cursor == ""
    sandbox.faults("ok")
    assert task_run(integration=integration, task="get-payments").counts["recorded"] == 1


def test_parked_after_the_bound_of_attempts_and_retried_by_staff(
    sandbox, make_integration, settings
):
    settings.FEESYNC_DELIVERY_MAX_ATTEMPTS = 2
    integration = make_integration()
    fee = make_fee(fee_date=IN_SCOPE)
    sandbox.faults("error")
    for _ in range(2):
        _time_passes()
        engine.deliver(integration_id=integration.pk)
    item = OutboxItem.objects.get(fee=fee)
    assert item.state == "parked" and item.last_error
    sandbox.faults("ok")
    assert engine.outbox_retry_parked(integration=integration) == 1
    Integration.objects.filter(pk=integration.pk).update(backoff_until=None)
    engine.deliver(integration_id=integration.pk)
    assert fee.reference in sandbox.fees() and not OutboxItem.objects.exists()


def test_nightly_task_runs_once_per_business_date(sandbox, make_integration):
    integration = make_integration()
    day = dt.date(2026, 11, 21)
    first = task_run(integration=integration, task="get-payments", business_date=day)
    again = task_run(integration=integration, task="get-payments", business_date=day)
    assert first is not None and first.outcome == "ok" and again is None
    assert TaskRun.objects.filter(task="get-payments").count() == 1
    assert (
        task_run(
            integration=integration, task="get-payments", business_date=day + dt.timedelta(days=1)
        )
        is not None
    )


def test_schedules_are_created_once_and_staff_changes_survive(sandbox, make_integration):
    integration = make_integration()
    rows = PeriodicTask.objects.filter(name__startswith=f"{integration.slug}: ")
    names = set(rows.values_list("name", flat=True))
    assert f"{integration.slug}: Validate fees" in names
    assert f"{integration.slug}: Get payments" in names
    validate = rows.get(name=f"{integration.slug}: Validate fees")
    assert json.loads(validate.kwargs) == {
        "integration_id": integration.pk,
        "task": "validate",
        "nightly": True,
    }
    validate.enabled = False
    validate.save()
    assert schedules_sync() == 0  # a deploy runs it again
    validate.refresh_from_db()
    assert validate.enabled is False


def test_credentials_are_encrypted_at_rest_masked_and_rotatable(make_integration, settings):
    from cryptography.fernet import Fernet

    integration = make_integration()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials_encrypted FROM vendors_integration WHERE id = %s", [integration.pk]
        )
        stored = cursor.fetchone()[0]
    assert "sandbox" not in stored and stored
    masked = integration.masked_credentials()
    assert all("sandbox" not in v and "•" in v for v in masked.values())

    before = integration.credentials
    new_key = Fernet.generate_key().decode()
    settings.FEESYNC_CREDENTIAL_KEYS = [new_key, *settings.FEESYNC_CREDENTIAL_KEYS]
    call_command("rotate_keys")
    settings.FEESYNC_CREDENTIAL_KEYS = [new_key]  # the old key is gone
    integration.refresh_from_db()
    assert integration.credentials == before


def test_celery_is_configured_to_survive_crashes():
    from config.celery import app

    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.worker_prefetch_multiplier == 1
    # Redis re-delivers an unacknowledged task after the visibility timeout: it must be
    # longer than any task may run and than any delay the engine waits.
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert visibility > conf.task_time_limit
    assert visibility > settings.FEESYNC_BACKOFF_CAP_SECONDS
    assert visibility > settings.FEESYNC_DELIVERY_LEASE_SECONDS


def test_commands_of_the_contract(sandbox, make_integration, capsys):
    integration = make_integration()
    make_fee(amount="10.00", fee_date=IN_SCOPE)
    call_command("test_connection", integration.slug)
    assert "Test Pull: passed" in capsys.readouterr().out

    call_command("run_vendor_task", integration.slug, "send-fees")
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "ok" and out["counts"]["acknowledged"] == 1

    call_command("sync_status", integration.slug, "--json")
    status = json.loads(capsys.readouterr().out)
    for key in (
        "fees_in_scope",
        "fees_acknowledged",
        "changes_waiting",
        "changes_parked",
        "payments_recorded",
        "discrepancies_open",
        "tasks",
    ):
        assert key in status
    assert status["fees_in_scope"] == 1 and status["fees_acknowledged"] == 1
    assert status["tasks"]["send-fees"]["outcome"] == "ok"

    sandbox.faults("down")
    with pytest.raises(CommandError) as excinfo:
        call_command("test_connection", integration.slug)
    assert excinfo.value.returncode == 1
    integration.refresh_from_db()
    assert integration.test_pull_ok is False and integration.test_pull_detail


def test_a_vendor_payment_above_a_lowered_fee_settles_it_and_keeps_the_rest_as_credit(
    sandbox, make_integration
):
    from apps.fees.services import fee_change, student_credit

    integration = make_integration()
    fee = make_fee(amount="10.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    # The parent pays in full at the vendor while the district lowers the fee meanwhile.
    sandbox.control("pay", fee_ref=fee.reference, amount="10.00")
    fee_change(fee=fee, amount="8.00", origin=Origin())
    run = task_run(integration=integration, task="get-payments")
    assert (run.counts["recorded"], run.counts["unmatched"]) == (1, 0)
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (Decimal("0.00"), "paid")
    assert student_credit(student=fee.student) == Decimal("2.00")
    assert not integration.discrepancies.exists()
    assert Fee.objects.count() == 1


def test_a_clerk_opening_the_fees_page_brings_in_that_students_payments(
    sandbox, make_integration, clerk, client
):
    integration = make_integration()
    fee = make_fee(amount="30.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    sandbox.control("pay", fee_ref=fee.reference, amount="12.00")
    client.force_login(clerk)
    url = f"/admin/students/student/{fee.student.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert "1 payment brought in from" in page.content.decode()
    fee.refresh_from_db()
    assert fee.balance == Decimal("18.00")
    # Opening it again records nothing twice.
    client.get(url)
    assert LedgerEntry.objects.filter(external_source=integration.external_source).count() == 1

    # With the vendor down the page still renders, with a plain message.
    sandbox.faults("down")
    page = client.get(url)
    assert page.status_code == 200
    assert "could not be checked just now" in page.content.decode()


@pytest.mark.parametrize("protocol", ["ftp", "sftp"])
def test_demographics_export_task_delivers_the_file_whole(make_integration, tmp_path, protocol):
    from tests.vendors.servers import PASSWORD, USERNAME, run_ftp_server, run_sftp_server

    make_fee(fee_date=IN_SCOPE)  # one student with a fee; demographics cover every student
    run = run_sftp_server if protocol == "sftp" else run_ftp_server
    with run(tmp_path / "drop") as server:
        integration = make_integration(
            transfer_protocol=protocol,
            transfer_host=server.host,
            transfer_port=server.port,
            transfer_host_key=server.host_key,
        )
        integration.credentials = {
            **integration.credentials,
            "transfer_username": USERNAME,
            "transfer_password": PASSWORD,
        }
        integration.save()
        result = task_run(integration=integration, task="export-demographics")
        assert result.outcome == "ok", result.error
        files = list((tmp_path / "drop").iterdir())
    assert [f.name for f in files] == [result.counts["file"]]
    lines = files[0].read_text().splitlines()
    assert lines[0].startswith("student_id,first_name,last_name")
    assert len(lines) == 1 + result.counts["rows"] == 2


def test_demographics_export_refuses_a_wrong_host_key(make_integration, tmp_path):
    from tests.vendors.servers import (
        PASSWORD,
        USERNAME,
        generate_ed25519_key,
        public_key_line,
        run_sftp_server,
    )

    with run_sftp_server(tmp_path / "drop") as server:
        integration = make_integration(
            transfer_protocol="sftp",
            transfer_host=server.host,
            transfer_port=server.port,
            transfer_host_key=public_key_line(generate_ed25519_key()),  # not the server's
        )
        integration.credentials = {
            **integration.credentials,
            "transfer_username": USERNAME,
            "transfer_password": PASSWORD,
        }
        integration.save()
        result = task_run(integration=integration, task="export-demographics")
        assert result.outcome == "failed"
        assert "host key does not match" in result.error
        assert not list((tmp_path / "drop").iterdir())
        assert server.auth_attempts == []  # refused before any password was sent


def test_widening_the_scope_of_an_enabled_integration_sends_the_fees_it_now_covers(
    sandbox, make_integration, django_capture_on_commit_callbacks
):
    from apps.categories.models import FeeCategory
    from apps.vendors.services import integration_set_categories, integration_set_import_after

    integration = make_integration(
        import_after=dt.date(2026, 10, 1), test_pull_ok=True, test_push_ok=True
    )
    september = make_fee(amount="9.00", fee_date=IN_SCOPE)
    engine.deliver(integration_id=integration.pk)
    assert sandbox.fees() == {}
    with django_capture_on_commit_callbacks(execute=True):
        integration_set_import_after(integration=integration, import_after=dt.date(2026, 8, 1))
    assert list(sandbox.fees()) == [september.reference]

    other = make_fee(amount="4.00", fee_date=IN_SCOPE)
    with django_capture_on_commit_callbacks(execute=True):
        integration_set_categories(
            integration=integration, categories=[FeeCategory.objects.get(fees=september)]
        )
        integration_set_categories(integration=integration, categories=[])
    assert set(sandbox.fees()) == {september.reference, other.reference}
