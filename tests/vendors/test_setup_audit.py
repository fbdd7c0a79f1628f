"""Every setup change is in the audit log (django-auditlog) with who, before and after; a
secret never appears there in clear, nor anywhere else in the database's logs."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry as AuditEntry
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from apps.vendors.audit import setting_changes
from apps.vendors.models import Integration, MerchantAccountMapping
from tests.admin_helpers import csrf_client
from tests.factories import CategoryFactory, MerchantAccountFactory
from tests.vendors.setup_pages import (
    IMPORT_AFTER,
    make_integration,
    section_text,
    section_url,
    setup_url,
    submit_form,
)

pytestmark = pytest.mark.django_db

OLD_SECRET = "old-secret-password-1"
NEW_SECRET = "brand-new-secret-password-2"
DEMOGRAPHICS_SECRET = "ftp-secret-value-3"


def entries_for(obj) -> list[AuditEntry]:
    ct = ContentType.objects.get_for_model(type(obj))
    return list(AuditEntry.objects.filter(content_type=ct, object_pk=str(obj.pk)).order_by("pk"))


def everything_logged() -> str:
    """Every audit and admin log row, all fields, as one string."""
    rows = [
        json.dumps(values, default=str)
        for model in (AuditEntry, AdminLogEntry)
        for values in model.objects.values()
    ]
    return "\n".join(rows)


def test_a_credentials_change_is_audited_without_the_secret_in_clear(district_admin):
    integration = make_integration(credentials={"username": "u-district", "password": OLD_SECRET})
    client = csrf_client(district_admin)

    submit_form(
        client,
        setup_url(integration),
        "connection-form",
        {
            "password": NEW_SECRET,
            "transfer_protocol": "ftps",
            "transfer_host": "ftp.example.org",
            "transfer_password": DEMOGRAPHICS_SECRET,
        },
    )

    entry = entries_for(integration)[-1]
    assert entry.actor == district_admin
    assert entry.action == AuditEntry.Action.UPDATE
    changes = entry.changes_dict
    assert "credentials_encrypted" in changes
    assert changes["transfer_host"] == ["", "ftp.example.org"]
    logged = everything_logged()
    for secret in (OLD_SECRET, NEW_SECRET, DEMOGRAPHICS_SECRET, "u-district"):
        assert secret not in logged
    # What is logged of the credentials is the ciphertext, masked by auditlog.
    before, after = changes["credentials_encrypted"]
    assert after.startswith("*" * 10)


def test_setup_changes_are_audited_with_before_and_after(district_admin):
    integration = make_integration(credentials={"username": "u", "password": OLD_SECRET})
    trip, ath = CategoryFactory(code="TRIP"), CategoryFactory(code="ATH")
    account = MerchantAccountFactory(name="General Fund", merchant_id="MID-G")
    client = csrf_client(district_admin)

    submit_form(
        client,
        setup_url(integration),
        "accounts-form",
        {f"use_{account.pk}": "on", f"mid_{account.pk}": "PS-1"},
    )
    submit_form(client, setup_url(integration), "accounts-form", {f"mid_{account.pk}": "PS-2"})
    submit_form(client, setup_url(integration), "categories-form", {"categories": [str(trip.pk)]})
    submit_form(
        client,
        setup_url(integration),
        "parent-options-form",
        {"button_url": "https://parents.example/", "lunch_balance_threshold": "3.00"},
    )
    Integration.objects.filter(pk=integration.pk).update(test_pull_ok=True, test_push_ok=True)
    submit_form(
        client, setup_url(integration) + "?import_after=2026-07-01", "import-after-form", {}
    )
    client.post(
        section_url(integration, "task-schedule"),
        {"task": "validate", "enabled": "0"},
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )

    mapping = MerchantAccountMapping.objects.get()
    mapping_log = entries_for(mapping)
    assert [e.action for e in mapping_log] == [AuditEntry.Action.CREATE, AuditEntry.Action.UPDATE]
    assert mapping_log[1].changes_dict["vendor_merchant_id"] == ["PS-1", "PS-2"]
    assert all(e.actor == district_admin for e in mapping_log)

    log = [e for e in entries_for(integration) if e.action == AuditEntry.Action.UPDATE]
    by_field: dict[str, list] = {}
    for entry in log:
        assert entry.actor == district_admin
        changes = setting_changes(entry.changes_dict, defaults=integration.kind.option_defaults())
        for field, values in changes.items():
            by_field.setdefault(field, []).append(values)
    assert by_field["categories"][0]["operation"] == "add"
    assert by_field["categories"][0]["objects"] == [str(trip)]
    assert by_field["button_url"] == [["", "https://parents.example/"]]
    assert by_field["lunch_balance_threshold"] == [["5.00", "3.00"]]
    assert by_field["import_after"] == [["None", str(IMPORT_AFTER)]]
    assert by_field["schedule of “Validate fees”"] == [["on", "off"]]

    # Going back to every category is recorded too (as the removal of the one chosen).
    submit_form(
        client,
        setup_url(integration),
        "categories-form",
        {"categories": [str(trip.pk), str(ath.pk)]},
    )
    removed = entries_for(integration)[-1].changes_dict["categories"]
    assert removed["operation"] == "delete" and removed["objects"] == [str(trip)]


def test_unmapping_an_account_is_audited(district_admin):
    integration = make_integration()
    keep = MerchantAccountFactory(name="Keep", merchant_id="MID-K")
    drop = MerchantAccountFactory(name="Drop", merchant_id="MID-D")
    client = csrf_client(district_admin)
    submit_form(
        client,
        setup_url(integration),
        "accounts-form",
        {f"use_{keep.pk}": "on", f"use_{drop.pk}": "on"},
    )
    gone = MerchantAccountMapping.objects.get(merchant_account=drop)

    submit_form(client, setup_url(integration), "accounts-form", {}, drop=(f"use_{drop.pk}",))

    assert not MerchantAccountMapping.objects.filter(pk=gone.pk).exists()
    deletion = entries_for(gone)[-1]
    assert deletion.action == AuditEntry.Action.DELETE
    assert deletion.actor == district_admin


def test_enabling_and_disabling_are_audited_and_shown_on_the_setup_page(district_admin):
    account = MerchantAccountFactory()
    integration = make_integration(
        credentials={"username": "u", "password": OLD_SECRET},
        tests_passed=True,
        import_after=IMPORT_AFTER,
        enabled=False,
    )
    MerchantAccountMapping.objects.create(integration=integration, merchant_account=account)
    client = csrf_client(district_admin)

    submit_form(client, setup_url(integration), "enable-form", {})
    response = submit_form(client, setup_url(integration), "disable-form", {"confirm": "yes"})

    flips = [
        e.changes_dict["enabled"] for e in entries_for(integration) if "enabled" in e.changes_dict
    ]
    assert flips[-2:] == [["False", "True"], ["True", "False"]]
    history = section_text(response, "history")
    assert "enabled: True → False" in history
    assert OLD_SECRET not in response.content.decode()


def test_the_history_link_opens_the_integrations_audit_log(district_admin):
    integration = make_integration()
    make_integration(slug="other")  # its entries must not show
    client = csrf_client(district_admin)
    submit_form(client, setup_url(integration), "parent-options-form", {"button_text": "Pay"})

    response = client.get(
        reverse("admin:vendors_integration_history", args=[integration.pk]), follow=True
    )

    assert response.status_code == 200
    shown = list(response.context["cl"].result_list)
    assert shown and all(e.object_pk == str(integration.pk) for e in shown)
