"""A server that only has a retired credential key: every way in says which integration it
is and what to do, in plain words, and nothing shows a traceback (issue 10 item 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from apps.vendors import tasks
from apps.vendors.errors import IntegrationError
from apps.vendors.jobs import task_run
from apps.vendors.kinds.payschools.sandbox import DEFAULT_PASSWORD, DEFAULT_USERNAME
from apps.vendors.models import Integration, TaskRun
from apps.vendors.services import integration_update_connection
from tests.factories import StudentFactory
from tests.vendors.setup_pages import dashboard_url, make_integration, section_url, setup_url

pytestmark = pytest.mark.django_db

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
SAYS = (
    "The credentials of “PaySchools (demo)” were encrypted with a key this server no longer "
    "has. Add the old key back to FEESYNC_CREDENTIAL_KEYS and run manage.py rotate_keys, or "
    "enter the credentials again."
)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def orphaned(settings: Any) -> Integration:
    """PaySchools (demo), its credentials encrypted under a key the server then loses."""
    settings.FEESYNC_CREDENTIAL_KEYS = [OLD_KEY]
    integration = make_integration(
        name="PaySchools (demo)",
        slug="payschools-demo",
        enabled=True,
        credentials={"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD},
    )
    settings.FEESYNC_CREDENTIAL_KEYS = [NEW_KEY]
    return integration


def test_the_setup_page_and_dashboard_say_which_integration_and_what_to_do(
    district_admin, support_user, orphaned
):
    for user in (district_admin, support_user):
        client = Client()
        client.force_login(user)
        for page in (setup_url(orphaned), dashboard_url(orphaned)):
            response = client.get(page)
            assert response.status_code == 200, (user, page)
            html = response.content.decode()
            assert SAYS in html
            assert 'role="alert"' in html


def test_test_pull_on_the_setup_page_says_so_in_its_section(district_admin, orphaned):
    client = Client()
    client.force_login(district_admin)

    response = client.post(section_url(orphaned, "tests"), {"check": "pull"}, follow=True)

    assert response.status_code == 200
    said = [str(m) for m in response.context["section_messages"]["tests"]]
    assert len(said) == 1 and said[0].startswith("Test Pull failed in "), said
    assert said[0].endswith(SAYS), said
    orphaned.refresh_from_db()
    assert orphaned.test_pull_ok is False


def test_entering_the_credentials_again_recovers(orphaned):
    integration_update_connection(
        integration=orphaned,
        credentials={"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD},
    )

    orphaned.refresh_from_db()
    assert orphaned.credentials_problem == ""
    assert orphaned.credentials["username"] == DEFAULT_USERNAME


def test_entering_only_some_credentials_again_asks_for_the_rest(orphaned):
    with pytest.raises(IntegrationError) as refused:
        integration_update_connection(integration=orphaned, credentials={"password": "new"})
    assert "Enter the username" in str(refused.value)


def test_test_connection_on_the_command_line_is_a_plain_error(orphaned):
    with pytest.raises(CommandError) as failed:
        call_command("test_connection", "payschools-demo")

    assert str(failed.value) == SAYS
    assert failed.value.returncode != 0


@pytest.mark.django_db(transaction=True)
def test_manage_py_test_connection_exits_non_zero_without_a_traceback(orphaned):
    """The command as support runs it: its own process, its own environment."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        ),
        "FEESYNC_CREDENTIAL_KEYS": NEW_KEY,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    if connection.vendor != "postgresql":
        pytest.skip("the command's own process needs a database server to share")

    done = subprocess.run(  # noqa: S603 - our own manage.py, fixed arguments
        [sys.executable, "manage.py", "test_connection", "payschools-demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip() == f"CommandError: {SAYS}"


def test_rotate_keys_without_the_old_key_names_the_integration_and_saves_nothing(orphaned):
    before = Integration.objects.get(pk=orphaned.pk).credentials_encrypted

    with pytest.raises(CommandError) as failed:
        call_command("rotate_keys")

    assert str(failed.value) == SAYS
    assert Integration.objects.get(pk=orphaned.pk).credentials_encrypted == before


def test_rotate_keys_with_the_old_key_back_recovers(settings, orphaned):
    settings.FEESYNC_CREDENTIAL_KEYS = [NEW_KEY, OLD_KEY]
    call_command("rotate_keys")
    settings.FEESYNC_CREDENTIAL_KEYS = [NEW_KEY]

    assert Integration.objects.get(pk=orphaned.pk).credentials["username"] == DEFAULT_USERNAME


def test_a_task_run_by_the_worker_records_the_plain_error(orphaned):
    run = task_run(integration=orphaned, task="get-payments", trigger="schedule")

    assert run is not None
    assert (run.outcome, run.error) == (TaskRun.Outcome.FAILED, SAYS)


def test_the_worker_delivering_changes_records_the_plain_error_and_keeps_them(orphaned):
    tasks.deliver_outbox(orphaned.pk)  # raises nothing: there is nothing to retry yet

    orphaned.refresh_from_db()
    assert orphaned.last_error == SAYS


def test_opening_a_student_says_payments_could_not_be_checked_and_why(clerk, orphaned):
    student = StudentFactory()
    client = Client()
    client.force_login(clerk)

    response = client.get(f"/admin/students/student/{student.pk}/change/")

    assert response.status_code == 200
    assert any(SAYS in str(m) for m in response.context["messages"])
