"""The pay button: the integration's text and address, shown only when an enabled integration
manages (has in scope) at least one of the parent's open fees."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from apps.fees.models import Fee
from apps.fees.services import Origin, payment_take
from apps.portal.selectors import enabled_integrations
from apps.vendors.scope import Scope
from tests.factories import CategoryFactory, make_fee

from .conftest import IMPORT_AFTER, IN_SCOPE

FEES = reverse("portal:fees")
pytestmark = pytest.mark.django_db
BUTTON = 'href="https://pay.example.org/parents" target="_blank" rel="noopener"'


def page_of(parent_client, family) -> str:
    return parent_client(family).get(FEES).content.decode()


def test_button_opens_the_vendor_in_a_new_tab_and_says_so(
    make_family, parent_client, make_integration
):
    make_integration()
    family = make_family(1)
    make_fee(student=family.children[0], fee_date=IN_SCOPE)

    page = page_of(parent_client, family)

    assert BUTTON in page
    assert "Go to PaySchools" in page  # the default text
    assert 'aria-describedby="pay-hint-1"' in page
    assert '<p class="pay__hint" id="pay-hint-1">Opens PaySchools in a new tab.</p>' in page


def test_button_uses_the_integrations_own_text(make_family, parent_client, make_integration):
    make_integration(button_text="Pay school fees online")
    family = make_family(1)
    make_fee(student=family.children[0], fee_date=IN_SCOPE)

    page = page_of(parent_client, family)

    assert "Pay school fees online" in page and "Go to PaySchools" not in page


def test_button_shows_once_for_a_family_of_several_children(
    make_family, parent_client, make_integration
):
    make_integration()
    family = make_family(3)
    for child in family.children:
        make_fee(student=child, fee_date=IN_SCOPE)

    page = page_of(parent_client, family)
    # One button in the summary for the whole family; each fee also has its own (item 12).
    assert page.count('aria-describedby="pay-hint-') == 1
    assert page.count(BUTTON) == 1 + 3


@pytest.mark.parametrize(
    "why",
    ["disabled", "dated-before-import-after", "category-not-selected", "no-button-url"],
)
def test_no_button_when_no_enabled_integration_manages_an_open_fee(
    make_family, parent_client, make_integration, why
):
    category = CategoryFactory()
    fields = {
        "disabled": {"enabled": False},
        "category-not-selected": {"categories": [CategoryFactory()]},
        "no-button-url": {"button_url": ""},
    }.get(why, {})
    make_integration(**fields)
    family = make_family(1)
    early = why == "dated-before-import-after"
    fee_date = IMPORT_AFTER - dt.timedelta(days=1) if early else IN_SCOPE
    make_fee(student=family.children[0], fee_date=fee_date, category=category)

    page = page_of(parent_client, family)

    assert "pay.example.org" not in page
    # The parent is told where to pay it.
    if why == "no-button-url":
        assert "At PaySchools" in page and "Ask the school office for the link." in page
    else:
        assert "At the school office" in page


def test_button_shows_for_a_selected_category(make_family, parent_client, make_integration):
    category = CategoryFactory()
    make_integration(categories=[category, CategoryFactory()])
    family = make_family(1)
    make_fee(student=family.children[0], fee_date=IN_SCOPE, category=category)

    page = page_of(parent_client, family)

    assert BUTTON in page and "At the school office" not in page


def test_no_button_when_the_managed_fees_are_all_paid(make_family, parent_client, make_integration):
    make_integration()
    family = make_family(1)
    fee = make_fee(student=family.children[0], fee_date=IN_SCOPE, amount="20.00")
    payment_take(fee=fee, amount="20.00", method="cash", origin=Origin())

    assert "pay.example.org" not in page_of(parent_client, family)


def test_one_button_per_integration_that_manages_open_fees(
    make_family, parent_client, make_integration
):
    trips, meals = CategoryFactory(), CategoryFactory()
    make_integration(categories=[trips], button_url="https://a.example.org/", button_text="Pay A")
    make_integration(categories=[meals], button_url="https://b.example.org/", button_text="Pay B")
    make_integration(
        categories=[CategoryFactory()], button_url="https://c.example.org/", button_text="Pay C"
    )
    family = make_family(2)
    make_fee(student=family.children[0], fee_date=IN_SCOPE, category=trips)
    make_fee(student=family.children[1], fee_date=IN_SCOPE, category=meals)

    page = page_of(parent_client, family)

    assert "Pay A" in page and "Pay B" in page and "Pay C" not in page


def test_covers_agrees_with_the_sync_engines_scope(make_integration):
    """The page decides coverage in memory; it must say what the scope's queryset says."""
    selected, other = CategoryFactory(), CategoryFactory()
    every = make_integration()
    some = make_integration(categories=[selected])
    undated = make_integration(import_after=None)
    fees: list[Fee] = []
    for category in (selected, other):
        for fee_date in (IMPORT_AFTER - dt.timedelta(days=1), IMPORT_AFTER, IN_SCOPE):
            fees.append(make_fee(category=category, fee_date=fee_date))

    loaded = {e.integration.pk: e for e in enabled_integrations()}
    for integration in (every, some, undated):
        in_scope = set(Scope.of(integration).fees().values_list("pk", flat=True))
        for fee in fees:
            assert loaded[integration.pk].covers(fee) == (fee.pk in in_scope), (
                integration.slug,
                fee.category_id,
                fee.fee_date,
            )
