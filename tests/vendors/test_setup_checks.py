"""Test Pull / Test Push, the enable checklist with the vendor's unpaid fees, and the task
schedules, on the setup page, against the PaySchools sandbox over real HTTP."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.vendors.display import in_words, next_run, schedule_text
from apps.vendors.kinds.payschools.sandbox import DEFAULT_PASSWORD, DEFAULT_USERNAME
from apps.vendors.models import Integration, MerchantAccountMapping, TaskRun
from apps.vendors.sandboxes.client import SandboxControl
from apps.vendors.sandboxes.server import SandboxServer
from apps.vendors.schedules import periodic_tasks_of
from tests.admin_helpers import csrf_client
from tests.factories import MerchantAccountFactory, StudentFactory, make_fee
from tests.vendors.setup_pages import (
    IMPORT_AFTER,
    make_integration,
    section_text,
    setup_url,
    submit_form,
)

pytestmark = pytest.mark.django_db

PS_CREDENTIALS = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}


@pytest.fixture
def wired(payschools: SandboxServer) -> Integration:
    """A PaySchools integration wired to the sandbox, ready but not tested yet."""
    return make_integration(credentials=PS_CREDENTIALS, service_url=payschools.url + "/soap")


def test_test_pull_and_test_push_pass_and_say_what_was_tried_how_long_and_the_answer(
    district_admin, wired
):
    client = csrf_client(district_admin)

    response = _run_check(client, wired, "pull")
    text = section_text(response, "tests")
    assert "Test Pull passed in" in text
    assert f"Read one payment from PaySchools at {wired.service_url}." in text
    assert "PaySchools accepted the credentials" in text
    assert "Time taken" in text

    response = _run_check(client, wired, "push")
    assert "Test Push passed" in section_text(response, "tests")
    wired.refresh_from_db()
    assert wired.test_pull_ok and wired.test_push_ok
    assert wired.test_push_at is not None
    # The results are kept: a later visit still shows them, with their time.
    later = section_text(client.get(setup_url(wired)), "tests")
    assert later.count("Passed") == 2


def _run_check(client, integration, which):
    """Press "Run Test Pull" / "Run Test Push" as a browser does."""
    import lxml.html

    page = client.get(setup_url(integration))
    doc = lxml.html.fromstring(page.content.decode())
    form = doc.xpath(f"//input[@id='run-test-{which}']/ancestor::form")[0]
    values = dict(form.form_values())
    return client.post(form.get("action").split("#")[0], values, follow=True)


def test_a_vendor_that_is_down_fails_the_test_in_plain_words(
    district_admin, wired, payschools_control: SandboxControl
):
    payschools_control.faults("down")
    response = _run_check(csrf_client(district_admin), wired, "pull")

    text = section_text(response, "tests")
    assert "Test Pull failed" in text
    assert "PaySchools' server is unavailable (HTTP 503 Service Unavailable)" in text
    wired.refresh_from_db()
    assert wired.test_pull_ok is False


def test_wrong_credentials_fail_the_test_and_say_so(district_admin, payschools):
    integration = make_integration(
        credentials={"username": DEFAULT_USERNAME, "password": "wrong-password"},
        service_url=payschools.url + "/soap",
    )
    response = _run_check(csrf_client(district_admin), integration, "push")
    text = section_text(response, "tests")
    assert "Test Push failed" in text
    assert "check the username and password" in text.lower() or "refused" in text.lower()


def test_the_checklist_lists_unpaid_fees_already_at_the_vendor_before_enabling(
    district_admin, wired, payschools_control: SandboxControl
):
    payschools_control.foreign_fee("100777", "42.00")
    Integration.objects.filter(pk=wired.pk).update(test_pull_ok=True, test_push_ok=True)

    text = section_text(csrf_client(district_admin).get(setup_url(wired)), "enable")

    assert "PaySchools already has 1 unpaid fee that FeeSync did not send" in text
    assert "100777" in text and "$42.00" in text
    assert "Missing Merchant accounts mapped" in text
    assert "Missing Import-after date set" in text


def test_when_the_vendor_cannot_be_asked_the_checklist_says_so_plainly(district_admin):
    integration = make_integration(credentials=PS_CREDENTIALS, tests_passed=True)  # closed port
    text = section_text(csrf_client(district_admin).get(setup_url(integration)), "enable")
    assert "FeeSync could not ask PaySchools which unpaid fees it already has" in text
    assert "Check with PaySchools before enabling." in text


def test_enabling_after_the_checklist_sends_every_fee_in_scope_to_the_vendor(
    district_admin, wired, payschools_control: SandboxControl, django_capture_on_commit_callbacks
):
    account = MerchantAccountFactory()
    student = StudentFactory()
    in_scope = make_fee(student=student, merchant_account=account, fee_date=dt.date(2026, 9, 1))
    make_fee(student=student, merchant_account=account, fee_date=dt.date(2026, 6, 1))
    MerchantAccountMapping.objects.create(integration=wired, merchant_account=account)
    Integration.objects.filter(pk=wired.pk).update(
        test_pull_ok=True, test_push_ok=True, import_after=IMPORT_AFTER
    )
    client = csrf_client(district_admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = submit_form(client, setup_url(wired), "enable-form", {})

    assert "PaySchools is enabled" in section_text(response, "enable")
    wired.refresh_from_db()
    assert wired.enabled
    held = {f["fee_ref"] for f in payschools_control.state()["fees"]}
    assert held == {in_scope.reference}  # the earlier fee never goes
    run = TaskRun.objects.get(integration=wired, task="send-fees")
    assert (run.trigger, run.outcome) == ("enabled", "ok")
    # Disable: the page says what stops, and asks for confirmation first.
    enable = section_text(client.get(setup_url(wired)), "enable")
    assert "Disabling PaySchools stops:" in enable
    assert "No fee is sent to PaySchools" in enable
    assert "No payment is pulled from PaySchools." in enable
    assert "Parents no longer see PaySchools in the portal, nor its pay button." in enable
    assert "Its scheduled tasks stop: " in enable and "Validate fees" in enable
    response = submit_form(client, setup_url(wired), "disable-form", {})
    assert "tick “Yes, disable PaySchools” to confirm" in section_text(response, "enable")
    wired.refresh_from_db()
    assert wired.enabled
    response = submit_form(client, setup_url(wired), "disable-form", {"confirm": "yes"})
    assert "nothing is sent or pulled until it is enabled again" in section_text(response, "enable")
    wired.refresh_from_db()
    assert not wired.enabled


def test_a_tasks_schedule_is_switched_off_and_on_and_run_now_needs_an_enabled_integration(
    district_admin, support_user
):
    integration = make_integration()
    client = csrf_client(district_admin)

    page = client.get(setup_url(integration))
    tasks = section_text(page, "tasks")
    assert "Validate fees Schedule on" in tasks and "Every day at 01:30" in tasks
    assert "Lunch balance sync" in tasks  # PaySchools reports lunch balances
    assert "Get balances" not in tasks  # ...but not account balances

    response = _post_in_task(client, integration, "validate", "task-schedule", enabled="0")
    assert "“Validate fees” is switched off" in section_text(response, "tasks")
    periodic = PeriodicTask.objects.get(name="payschools-setup: Validate fees")
    assert not periodic.enabled
    response = _post_in_task(client, integration, "validate", "task-schedule", enabled="1")
    periodic.refresh_from_db()
    assert periodic.enabled

    response = _post_in_task(client, integration, "validate", "task-run")
    assert "did not run: enable the integration first" in section_text(response, "tasks")
    assert not TaskRun.objects.exists()


def _post_in_task(client, integration, task, section, **extra):
    import lxml.html

    page = client.get(setup_url(integration))
    doc = lxml.html.fromstring(page.content.decode())
    action_part = f"/setup/{section}/"
    for form in doc.xpath(f"//li[@id='task-{task}']//form"):
        if action_part in form.get("action"):
            values = dict(form.form_values())
            values.update(extra)
            return client.post(form.get("action").split("#")[0], values, follow=True)
    raise AssertionError(f"no {section} form for {task}")


def test_schedules_read_in_words_with_their_next_run():
    integration = make_integration()
    periodic = {p.name.split(": ")[1]: p for p in periodic_tasks_of(integration)}

    assert schedule_text(periodic["Send fees (import to the vendor)"]) == "Every 15 minutes"
    assert schedule_text(periodic["Validate fees"]).startswith("Every day at 01:30 (")
    at, words = next_run(periodic["Validate fees"])
    assert at is not None and timezone.now() < at <= timezone.now() + timedelta(days=1)
    assert "(in " in words
    periodic["Validate fees"].enabled = False
    assert next_run(periodic["Validate fees"]) == (None, "Off")
    assert in_words(timedelta(seconds=30)) == "due now"
    assert in_words(timedelta(minutes=14, seconds=50)) == "in 14 minutes"
    assert in_words(timedelta(hours=5)) == "in 5 hours"
