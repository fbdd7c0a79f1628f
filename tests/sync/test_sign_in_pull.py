"""A payment made at the vendor just before a parent signs in is on the first page they see
(issue 11 item 15): the sign-in asks every vendor within a short deadline before that page.

These tests run in a transaction that is never committed, so the background pull the
sign-in queues on commit does not run unless a test runs it: what the first page shows is
what the sign-in itself brought in."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from apps.vendors import engine
from apps.vendors.models import Integration
from tests.factories import GuardianFactory, make_fee

from .conftest import integration_for

pytestmark = pytest.mark.django_db
IN_SCOPE = dt.date(2026, 9, 15)
PASSWORD = "pw-for-tests-1"


def _family_owing(sandbox, amount: str = "40.00"):
    integration = integration_for(sandbox, button_url="https://pay.example.org/parents")
    guardian = GuardianFactory()
    fee = make_fee(amount=amount, fee_date=IN_SCOPE, description="Science museum trip")
    guardian.students.add(fee.student)
    engine.send_fees(integration=integration)  # the vendor holds the fee
    assert fee.reference in sandbox.fees()
    return integration, guardian, fee


def _sign_in(guardian) -> Client:
    client = Client()
    response = client.post(
        "/portal/login/", {"username": guardian.user.username, "password": PASSWORD}
    )
    assert response.status_code == 302, response.content
    return client


def test_a_payment_made_just_before_signing_in_is_on_the_first_page(sandbox, settings):
    settings.FEESYNC_PARENT_SIGN_IN_DEADLINE_SECONDS = 1.0
    _, guardian, fee = _family_owing(sandbox)
    sandbox.control("pay", fee_ref=fee.reference, amount="40.00")

    page = _sign_in(guardian).get("/portal/").content.decode()

    fee.refresh_from_db()
    assert fee.status == "paid"
    assert f"Nothing is owed for {fee.student.first_name}" in page
    assert "could not be checked just now" not in page


def test_a_slow_vendor_is_said_on_the_first_page_and_pulled_in_the_background(
    sandbox, settings, django_capture_on_commit_callbacks
):
    settings.FEESYNC_PARENT_SIGN_IN_DEADLINE_SECONDS = 0.5
    integration, guardian, fee = _family_owing(sandbox)
    sandbox.control("pay", fee_ref=fee.reference, amount="15.00")
    sandbox.faults("slow", delay_ms=2500)

    with django_capture_on_commit_callbacks() as background:
        client = _sign_in(guardian)
    first = client.get("/portal/").content.decode()
    vendor = Integration.objects.get(pk=integration.pk).vendor_name

    assert f"Payments made at {vendor} could not be checked just now" in first
    fee.refresh_from_db()
    assert str(fee.balance) == "40.00"  # not brought in yet, and the page says so
    assert background, "the sign-in queued no background pull"

    sandbox.faults("ok")
    for callback in background:
        callback()  # the background pull (eager in tests), as the worker would run it
    fee.refresh_from_db()
    assert str(fee.balance) == "25.00"
    later = client.get("/portal/").content.decode()
    assert "could not be checked just now" not in later  # said once
    assert "$25.00" in later
