"""One vendor per fee (issue 11, item 2): an integration cannot be enabled, nor widen its
categories, while another enabled integration sends any of the same categories."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.vendors.models import Integration, MerchantAccountMapping
from apps.vendors.services import (
    IntegrationError,
    category_overlaps,
    enable_checklist,
    integration_set_categories,
    integration_set_enabled,
)
from tests.factories import CategoryFactory, MerchantAccountFactory

pytestmark = pytest.mark.django_db


def integration(slug: str, kind: str, name: str, categories, *, enabled: bool) -> Integration:
    i = Integration(
        vendor_kind=kind,
        slug=slug,
        name=name,
        service_url="http://127.0.0.1:9/",
        enabled=enabled,
        import_after=dt.date(2026, 8, 1),
        test_pull_ok=True,
        test_push_ok=True,
    )
    i.credentials = {"username": "u", "password": "p", "api_key": "k"}
    i.save()
    i.categories.set(categories)
    MerchantAccountMapping.objects.create(integration=i, merchant_account=MerchantAccountFactory())
    return i


@pytest.fixture
def cats():
    return {
        code: CategoryFactory(code=code, description=name)
        for code, name in [("ACT", "Activity"), ("LIB", "Library fine"), ("BUS", "Bus")]
    }


def test_enabling_is_refused_while_another_enabled_integration_sends_a_shared_category(cats):
    integration("ps", "payschools", "PaySchools", [cats["LIB"], cats["BUS"]], enabled=True)
    cp = integration(
        "cp", "communitypass", "Community Pass", [cats["ACT"], cats["LIB"]], enabled=False
    )

    with pytest.raises(IntegrationError) as refused:
        integration_set_enabled(integration=cp, enabled=True)

    text = " ".join(refused.value.messages)
    assert "Community Pass cannot be enabled" in text
    assert "PaySchools is enabled and already sends Library fine" in text
    assert "Bus" not in text and "Activity" not in text
    cp.refresh_from_db()
    assert cp.enabled is False
    item = next(i for i in enable_checklist(integration=cp) if "other vendor" in i.label)
    assert not item.ok and "PaySchools" in item.detail


def test_enabling_is_allowed_once_the_categories_do_not_overlap(cats):
    integration("ps", "payschools", "PaySchools", [cats["LIB"], cats["BUS"]], enabled=True)
    cp = integration("cp", "communitypass", "Community Pass", [cats["ACT"]], enabled=False)

    integration_set_enabled(integration=cp, enabled=True)

    cp.refresh_from_db()
    assert cp.enabled is True


def test_every_category_overlaps_with_any_category(cats):
    integration("ps", "payschools", "PaySchools", [], enabled=True)  # none chosen: all
    cp = integration("cp", "communitypass", "Community Pass", [cats["ACT"]], enabled=False)

    overlaps = category_overlaps(integration=cp)

    assert [(o.other.name, o.categories) for o in overlaps] == [("PaySchools", ["Activity"])]
    with pytest.raises(IntegrationError, match="already sends Activity"):
        integration_set_enabled(integration=cp, enabled=True)


def test_a_disabled_integration_does_not_block(cats):
    integration("ps", "payschools", "PaySchools", [cats["ACT"]], enabled=False)
    cp = integration("cp", "communitypass", "Community Pass", [cats["ACT"]], enabled=False)

    integration_set_enabled(integration=cp, enabled=True)

    assert Integration.objects.get(slug="cp").enabled


def test_widening_an_enabled_integration_into_anothers_category_is_refused(cats):
    ps = integration("ps", "payschools", "PaySchools", [cats["LIB"]], enabled=True)
    integration("cp", "communitypass", "Community Pass", [cats["ACT"]], enabled=True)

    with pytest.raises(IntegrationError) as refused:
        integration_set_categories(integration=ps, categories=[cats["LIB"], cats["ACT"]])
    assert "Community Pass is enabled and already sends Activity" in " ".join(
        refused.value.messages
    )
    assert {c.code for c in ps.categories.all()} == {"LIB"}

    # Every category (an empty list) would include Activity too.
    with pytest.raises(IntegrationError, match="already sends Activity"):
        integration_set_categories(integration=ps, categories=[])

    integration_set_categories(integration=ps, categories=[cats["LIB"], cats["BUS"]])
    assert {c.code for c in ps.categories.all()} == {"LIB", "BUS"}


def test_narrowing_out_of_an_overlap_made_before_the_rule_is_allowed(cats):
    ps = integration("ps", "payschools", "PaySchools", [cats["LIB"], cats["ACT"]], enabled=True)
    integration("cp", "communitypass", "Community Pass", [cats["ACT"], cats["BUS"]], enabled=True)

    integration_set_categories(integration=ps, categories=[cats["LIB"]])

    assert category_overlaps(integration=ps) == []


def test_seed_demo_integrations_do_not_overlap(db):
    from django.core.management import call_command

    call_command("seed_demo", students=8, verbosity=0)
    enabled = list(Integration.objects.filter(enabled=True))
    assert len(enabled) >= 2
    for i in enabled:
        assert category_overlaps(integration=i) == [], i.slug
