"""Integration settings at the service level: parent options, the enable checklist, the
import-after gate, resolving discrepancies. (The setup screens call these.)"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.vendors.models import Discrepancy, Integration
from apps.vendors.services import (
    IntegrationError,
    discrepancy_resolve,
    enable_checklist,
    integration_set_enabled,
    integration_set_import_after,
    integration_update_parent_options,
)
from tests.factories import MerchantAccountFactory

pytestmark = pytest.mark.django_db


def payschools(**fields) -> Integration:
    integration = Integration(
        vendor_kind="payschools",
        slug="ps",
        name="PaySchools",
        service_url="http://127.0.0.1:9/soap",
        **fields,
    )
    integration.credentials = {"username": "u", "password": "p"}
    integration.save()
    return integration


def test_parent_options_are_stored_when_valid():
    integration = payschools()
    integration_update_parent_options(
        integration=integration,
        button_url="https://pay.example.org/district",
        button_text="",
        lunch_balance_threshold="7.50",
        show_lunch_balance=True,
        sync_lunch_balance=True,
        parent_message="Pay online any time.",
    )
    integration.refresh_from_db()
    assert integration.lunch_balance_threshold == Decimal("7.50")
    assert integration.parent_button_text == "Go to PaySchools"
    assert integration.parent_message == "Pay online any time."


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"button_url": "pay.example.org"}, "button_url", "is not a web address"),
        ({"lunch_payment_url": "javascript:alert(1)"}, "lunch_payment_url", "not a web address"),
        ({"lunch_balance_threshold": "-1"}, "lunch_balance_threshold", "cannot be negative"),
        ({"lunch_balance_threshold": "2.555"}, "lunch_balance_threshold", "to the cent"),
        ({"lunch_balance_threshold": "12,50"}, "lunch_balance_threshold", "“12,50” uses a comma"),
        ({"lunch_balance_threshold": "NaN"}, "lunch_balance_threshold", "“NaN” is not a number"),
        ({"show_vendor_balance": True}, "show_vendor_balance", "does not report account"),
        ({"lock_portal_on_balance": True}, "show_vendor_balance", "does not report account"),
        ({"show_lunch_balance": True}, "sync_lunch_balance", "only if they are synced"),
    ],
)
def test_bad_parent_options_are_refused_with_a_message_and_nothing_saved(options, field, message):
    integration = payschools(parent_message="Before")
    with pytest.raises(IntegrationError) as excinfo:
        integration_update_parent_options(
            integration=integration, parent_message="After", **options
        )
    assert message in " ".join(excinfo.value.message_dict[field])
    integration.refresh_from_db()
    assert integration.parent_message == "Before"


def test_enabling_waits_for_the_checklist():
    integration = payschools()
    with pytest.raises(IntegrationError, match="Test Pull passed; Test Push passed; Merchant"):
        integration_set_enabled(integration=integration, enabled=True)
    labels = {i.label: i.ok for i in enable_checklist(integration=integration)}
    assert labels == {
        "Test Pull passed": False,
        "Test Push passed": False,
        "Merchant accounts mapped": False,
        "Categories chosen": True,
        "No other vendor sends these categories": True,
        "Import-after date set": False,
    }
    Integration.objects.filter(pk=integration.pk).update(test_pull_ok=True, test_push_ok=True)
    integration.refresh_from_db()
    integration.account_mappings.create(merchant_account=MerchantAccountFactory())
    integration_set_import_after(integration=integration, import_after=dt.date(2026, 8, 1))
    integration_set_enabled(integration=integration, enabled=True)
    assert Integration.objects.get(pk=integration.pk).enabled


def test_payschools_does_not_require_tests_before_the_import_date():
    integration = payschools()
    integration_set_import_after(integration=integration, import_after=dt.date(2026, 8, 1))
    assert Integration.objects.get(pk=integration.pk).import_after == dt.date(2026, 8, 1)


def test_a_discrepancy_is_resolved_once_with_a_note(clerk):
    integration = payschools()
    found = Discrepancy.objects.create(
        integration=integration, kind="foreign_fee", fee_ref="V-1", detail="Only at the vendor"
    )
    with pytest.raises(IntegrationError, match="Say how it was resolved"):
        discrepancy_resolve(discrepancy=found, note=" ", user=clerk)
    discrepancy_resolve(discrepancy=found, note="Purged at the vendor", user=clerk)
    found.refresh_from_db()
    assert found.resolved_by == clerk and found.resolution_note == "Purged at the vendor"
    with pytest.raises(IntegrationError, match="already resolved"):
        discrepancy_resolve(discrepancy=found, note="again", user=clerk)


def test_community_pass_import_date_waits_for_both_tests():
    integration = Integration(
        vendor_kind="communitypass", slug="cp", name="CP", service_url="http://127.0.0.1:9/v1"
    )
    integration.credentials = {"api_key": "k"}
    integration.save()
    with pytest.raises(IntegrationError, match="requires both Test Pull and Test Push"):
        integration_set_import_after(integration=integration, import_after=dt.date(2026, 8, 1))
    Integration.objects.filter(pk=integration.pk).update(test_pull_ok=True, test_push_ok=False)
    integration.refresh_from_db()
    with pytest.raises(IntegrationError):
        integration_set_import_after(integration=integration, import_after=dt.date(2026, 8, 1))
    Integration.objects.filter(pk=integration.pk).update(test_push_ok=True)
    integration.refresh_from_db()
    integration_set_import_after(integration=integration, import_after=dt.date(2026, 8, 1))
    assert Integration.objects.get(pk=integration.pk).import_after == dt.date(2026, 8, 1)


def test_community_pass_balance_options_are_accepted():
    integration = Integration(
        vendor_kind="communitypass", slug="cp2", name="CP", service_url="http://127.0.0.1:9/v1"
    )
    integration.save()
    integration_update_parent_options(
        integration=integration,
        show_vendor_balance=True,
        lock_portal_on_balance=True,
        balance_message="Please settle your Community Pass balance.",
    )
    integration.refresh_from_db()
    assert integration.lock_portal_on_balance and integration.show_vendor_balance
    with pytest.raises(IntegrationError) as excinfo:
        integration_update_parent_options(
            integration=integration, show_lunch_balance=True, sync_lunch_balance=True
        )
    assert "does not report lunch balances" in str(excinfo.value)
