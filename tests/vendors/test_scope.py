"""Which fees an integration manages (apps.vendors.scope): every way of asking says the same."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.fees.models import Fee
from apps.fees.services import Origin, fee_waive
from apps.vendors.models import OutboxItem
from apps.vendors.scope import Scope
from apps.vendors.selectors import scope_preview
from tests.factories import CategoryFactory, make_fee
from tests.vendors.setup_pages import make_integration

pytestmark = pytest.mark.django_db

START = dt.date(2026, 9, 1)


@pytest.fixture
def fees():
    selected, other = CategoryFactory(), CategoryFactory()
    made = [
        make_fee(category=category, fee_date=day)
        for category in (selected, other)
        for day in (START - dt.timedelta(days=1), START, START + dt.timedelta(days=30))
    ]
    return selected, made


def ids(qs) -> set[int]:
    return set(qs.values_list("pk", flat=True))


def test_no_category_selected_covers_every_category_from_the_date(fees):
    _, made = fees
    scope = Scope.of(make_integration(import_after=START))

    expected = {f.pk for f in made if f.fee_date >= START}
    assert ids(scope.fees()) == expected
    assert {f.pk for f in made if scope.covers(f)} == expected


def test_selected_categories_narrow_the_scope(fees):
    selected, made = fees
    scope = Scope.of(make_integration(import_after=START, categories=[selected]))

    expected = {f.pk for f in made if f.fee_date >= START and f.category_id == selected.pk}
    assert ids(scope.fees()) == expected
    assert {f.pk for f in made if scope.covers(f)} == expected
    assert ids(Fee.objects.filter(scope.q())) == expected


def test_without_an_import_after_date_nothing_is_in_scope_yet(fees):
    selected, made = fees
    scope = Scope.of(make_integration(import_after=None, categories=[selected]))

    assert not scope.fees().exists()
    assert not any(scope.covers(f) for f in made)
    assert not Fee.objects.filter(scope.q()).exists()
    assert scope.changelist_filters() == {}


def test_another_date_keeps_the_categories(fees):
    selected, made = fees
    scope = Scope.of(make_integration(import_after=None, categories=[selected]))

    later = START + dt.timedelta(days=1)
    expected = {f.pk for f in made if f.fee_date >= later and f.category_id == selected.pk}
    assert ids(scope.with_date(later).fees()) == expected


def test_the_filter_works_through_a_relation(fees):
    selected, made = fees
    integration = make_integration(import_after=START, categories=[selected])
    for fee in made:
        OutboxItem.objects.create(
            integration=integration, fee=fee, version=fee.version, next_attempt_at=timezone.now()
        )
    scope = Scope.of(integration)

    queued = OutboxItem.objects.filter(scope.q("fee__")).values_list("fee_id", flat=True)
    assert set(queued) == ids(scope.fees())


def test_the_staff_fee_list_link_filters_the_same_fees(fees):
    selected, _ = fees
    scope = Scope.of(make_integration(import_after=START, categories=[selected]))

    assert scope.changelist_filters() == {
        "fee_date__gte": START.isoformat(),
        "category__in": str(selected.pk),
    }


def test_scopes_of_several_integrations_agree_with_one_by_one(fees, django_assert_num_queries):
    selected, _ = fees
    some = make_integration(import_after=START, categories=[selected])
    every = make_integration("communitypass", import_after=START)

    with django_assert_num_queries(1):
        scopes = Scope.of_each([some, every])

    assert scopes == {some.pk: Scope.of(some), every.pk: Scope.of(every)}


def test_the_setup_preview_counts_what_another_date_would_send(fees):
    selected, made = fees
    integration = make_integration(import_after=None, categories=[selected])
    # No longer open, the way a fee gets there (through the ledger, which stays consistent).
    fee_waive(fee=made[2], reason="Waived for the test", origin=Origin())
    mine = [
        f for f in Fee.objects.filter(pk__in=[f.pk for f in made]) if f.category_id == selected.pk
    ]
    day = START + dt.timedelta(days=1)
    is_open = [f.status == Fee.Status.OPEN for f in mine]

    assert scope_preview(integration, day) == {
        "sent": sum(f.fee_date >= day for f in mine),
        "sent_open": sum(f.fee_date >= day and o for f, o in zip(mine, is_open, strict=True)),
        "never_open": sum(f.fee_date < day and o for f, o in zip(mine, is_open, strict=True)),
    }
