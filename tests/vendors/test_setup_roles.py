"""Who may do what on the setup page and the dashboard (DESIGN.md, "Who may do what"):
district admins everything; support staff look (secrets masked, credentials form refused)
and run checks and tasks; fees clerks none of it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.vendors.models import Discrepancy, Integration, OutboxItem, TaskRun
from tests.admin_helpers import csrf_client
from tests.factories import CategoryFactory, MerchantAccountFactory, make_fee
from tests.vendors.setup_pages import (
    IMPORT_AFTER,
    dashboard_url,
    make_integration,
    section_text,
    section_url,
    setup_url,
    texts,
)

pytestmark = pytest.mark.django_db

SECRET = "s3cret-password-value"
CHANGE_SECTIONS = {
    "connection": {"service_url": "https://evil.example/", "timeout_seconds": "5"},
    "accounts": {},
    "categories": {},
    "import-after": {"import_after": "2026-07-01"},
    "parent-options": {"button_url": "https://evil.example/"},
    "task-schedule": {"task": "send-fees", "enabled": "0"},
    "enable": {"enabled": "1"},
}


@pytest.fixture
def integration() -> Integration:
    return make_integration(
        credentials={"username": "district-user", "password": SECRET},
        tests_passed=True,
        import_after=IMPORT_AFTER,
    )


def post(client, url, data=None):
    client.get(reverse("admin:index"))  # a CSRF cookie, as a browser has
    return client.post(url, data or {}, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)


# --- district admin -------------------------------------------------------------------------------


def test_district_admin_sees_setup_in_the_index_and_every_form(district_admin, integration):
    client = csrf_client(district_admin)
    index = texts(client.get(reverse("admin:index")))
    assert "Payments" in index and "Integrations" in index
    page = client.get(setup_url(integration))
    html = page.content.decode()
    for form_id in ("connection-form", "categories-form", "parent-options-form", "enable-form"):
        assert f'id="{form_id}"' in html
    assert SECRET not in html
    assert client.get(reverse("admin:vendors_integration_add")).status_code == 200
    assert client.get(dashboard_url(integration)).status_code == 200


# --- support staff --------------------------------------------------------------------------------


def test_support_sees_setup_with_secrets_masked_and_no_credentials_form(support_user, integration):
    client = csrf_client(support_user)
    page = client.get(setup_url(integration))

    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html and "district-user" not in html
    connection = section_text(page, "connection")
    assert "••••••••ue" in connection  # masked, as masked_credentials() shows it
    assert 'id="connection-form"' not in html
    assert 'type="password"' not in html
    # Nothing to change: no setup forms, no enable button, no schedule switches.
    for form_id in ("accounts-form", "categories-form", "parent-options-form", "enable-form"):
        assert f'id="{form_id}"' not in html
    assert "Switch the schedule" not in html
    # What support may do: run the checks and the tasks.
    assert 'id="run-test-pull"' in html and "Run now" in html


def test_support_cannot_open_the_credentials_form_nor_post_to_any_setup_section(
    support_user, integration
):
    client = csrf_client(support_user)
    assert client.get(section_url(integration, "connection")).status_code == 403
    before = Integration.objects.filter(pk=integration.pk).values().get()
    for section, data in CHANGE_SECTIONS.items():
        assert post(client, section_url(integration, section), data).status_code == 403, section
    assert Integration.objects.filter(pk=integration.pk).values().get() == before
    assert client.get(reverse("admin:vendors_integration_add")).status_code == 403


def test_support_may_run_a_test_and_a_task(support_user, integration):
    client = csrf_client(support_user)

    response = post(client, section_url(integration, "tests"), {"check": "pull"})
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.test_pull_ok is False  # the closed port: a failed check, recorded

    Integration.objects.filter(pk=integration.pk).update(enabled=True)
    response = post(client, section_url(integration, "task-run"), {"task": "validate"})
    assert response.status_code == 302
    run = TaskRun.objects.get(integration=integration, task="validate")
    assert run.trigger == "manual"
    assert run.outcome == "failed"  # the vendor cannot be reached; recorded for staff


def test_support_may_retry_and_resend_but_not_resolve_findings(support_user, integration):
    fee = make_fee(fee_date=IMPORT_AFTER)
    finding = Discrepancy.objects.create(
        integration=integration,
        kind="missing_at_vendor",
        fee=fee,
        fee_ref=fee.reference,
        detail="x",
    )
    client = csrf_client(support_user)
    resend = reverse(
        "admin:vendors_integration_discrepancy", args=[integration.pk, finding.pk, "resend"]
    )
    resolve = reverse(
        "admin:vendors_integration_discrepancy", args=[integration.pk, finding.pk, "resolve"]
    )
    assert post(client, resend).status_code == 302
    assert OutboxItem.objects.filter(fee=fee).exists()
    assert post(client, resolve, {"note": "done"}).status_code == 403
    finding.refresh_from_db()
    assert finding.resolved_at is None
    dashboard = client.get(dashboard_url(integration)).content.decode()
    assert "Re-send the fee" in dashboard and "Mark resolved" not in dashboard


# --- fees clerks ----------------------------------------------------------------------------------


def test_fees_clerk_does_not_see_payments_setup_anywhere(clerk, integration):
    finding = Discrepancy.objects.create(integration=integration, kind="foreign_fee", detail="x")
    client = csrf_client(clerk)

    index = texts(client.get(reverse("admin:index")))
    # Of payments, a clerk sees only money vendors reported for fees they do not manage.
    assert "Integrations" not in index and "Held vendor movements" in index
    urls = [
        reverse("admin:vendors_integration_changelist"),
        reverse("admin:vendors_integration_add"),
        setup_url(integration),
        dashboard_url(integration),
        reverse("admin:vendors_integration_history", args=[integration.pk]),
        reverse("admin:vendors_outboxitem_changelist"),
        reverse("admin:vendors_discrepancy_changelist"),
        reverse("admin:vendors_taskrun_changelist"),
        reverse("admin:vendors_syncedfee_changelist"),
        *[section_url(integration, s) for s in [*CHANGE_SECTIONS, "tests", "task-run"]],
    ]
    for url in urls:
        assert client.get(url).status_code == 403, url
    # The app's own index page lists the held movements, nothing of setup.
    app_index = texts(client.get(reverse("admin:app_list", args=["vendors"])))
    assert "Held vendor movements" in app_index and "Integrations" not in app_index
    for section in [*CHANGE_SECTIONS, "tests", "task-run"]:
        assert post(client, section_url(integration, section), {}).status_code == 403, section
    for action in ("retry", "resend"):
        url = reverse("admin:vendors_integration_dashboard_action", args=[integration.pk, action])
        assert post(client, url).status_code == 403
    url = reverse(
        "admin:vendors_integration_discrepancy", args=[integration.pk, finding.pk, "resolve"]
    )
    assert post(client, url, {"note": "x"}).status_code == 403


def test_a_fees_clerk_still_sees_a_fees_life_at_the_vendor_on_the_fee_page(clerk, integration):
    """The fee's sync timeline is about the fee, not setup: clerks read it too."""
    category = CategoryFactory()
    fee = make_fee(category=category, merchant_account=MerchantAccountFactory())
    page = csrf_client(clerk).get(reverse("admin:fees_fee_change", args=[fee.pk]))
    assert page.status_code == 200
    assert "At the payment vendors" in texts(page)
    assert "Not sent: the PaySchools integration is not enabled." in texts(page)
