"""The data migration that moved the lunch and vendor-balance columns into
`Integration.options` keeps every value (issue 9), and can be undone."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.db_helpers import migrate_to, migrate_to_latest

BEFORE = [("vendors", "0001_initial")]
AFTER = [("vendors", "0002_integration_options")]


@pytest.mark.django_db(transaction=True)
def test_moved_columns_keep_every_value_and_the_move_can_be_undone() -> None:
    old = migrate_to(BEFORE)
    Integration = old.get_model("vendors", "Integration")
    Integration.objects.create(
        vendor_kind="payschools",
        slug="ps",
        name="PaySchools",
        service_url="https://ps.example/soap",
        lunch_payment_url="https://lunch.example/add",
        lunch_balance_threshold=Decimal("7.25"),
        show_lunch_balance=True,
        sync_lunch_balance=True,
        balance_message="",
    )
    Integration.objects.create(
        vendor_kind="communitypass",
        slug="cp",
        name="Community Pass",
        service_url="https://cp.example",
        show_vendor_balance=True,
        lock_portal_on_balance=True,
        balance_message="Settle at Community Pass.",
    )
    try:
        new = migrate_to(AFTER)
        moved = {i.slug: i.options for i in new.get_model("vendors", "Integration").objects.all()}
        assert moved["ps"]["lunch_balance_threshold"] == "7.25"  # money as its exact string
        assert moved["ps"]["lunch_payment_url"] == "https://lunch.example/add"
        assert moved["ps"]["show_lunch_balance"] is moved["ps"]["sync_lunch_balance"] is True
        assert moved["cp"]["lock_portal_on_balance"] is True
        assert moved["cp"]["balance_message"] == "Settle at Community Pass."

        back = migrate_to(BEFORE).get_model("vendors", "Integration")
        ps = back.objects.get(slug="ps")
        assert (ps.lunch_balance_threshold, ps.show_lunch_balance) == (Decimal("7.25"), True)
        assert back.objects.get(slug="cp").balance_message == "Settle at Community Pass."
    finally:
        migrate_to_latest()
        from apps.vendors.models import Integration as Current

        Current.objects.all().delete()


def test_the_running_model_reads_the_options_as_it_did_the_columns(db) -> None:
    from apps.vendors.models import Integration

    integration = Integration.objects.create(
        vendor_kind="payschools",
        slug="ps2",
        name="PaySchools",
        service_url="https://ps.example/soap",
        show_lunch_balance=True,
    )
    integration.refresh_from_db()
    assert integration.show_lunch_balance is True
    # Never set: the kind's declared initial value, as the column's default was.
    assert integration.lunch_balance_threshold == Decimal("5.00")
    assert integration.show_vendor_balance is False
