"""Cashiering: sessions opened by a cashier, taking API and office payments, closed with
counted totals, reconciled by a supervisor; a closed or reconciled session takes nothing
more. Over the real URLconf, auth, admin and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from apps.accounting.models import BankAccount, CashDrawer, CashDrawerSession, EntryBooking
from apps.accounting.services.cashiering import (
    CashieringError,
    session_close,
    session_open,
    session_reconcile,
)
from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from tests.admin_helpers import csrf_client, submit
from tests.factories import StaffFactory, make_fee
from tests.partner_api.conftest import PAYMENTS, payment

from .conftest import COMMAND, command

pytestmark = pytest.mark.django_db


@pytest.fixture
def cashiering(school: Any) -> Any:
    school.cashiering = True
    school.save()
    return school


@pytest.fixture
def vendor_drawer(school: Any, api_user: Any) -> CashDrawer:
    return CashDrawer.objects.create(school=school, name="Acme Pay", api_user=api_user)


@pytest.fixture
def vendor_session(vendor_drawer: CashDrawer, district_admin: Any) -> CashDrawerSession:
    return session_open(drawer=vendor_drawer, cashier=district_admin)


@pytest.fixture
def body(period: Any, academic_year: Any, fund: Any, bank_account: Any) -> dict[str, Any]:
    return command(period, academic_year, fund, bank_account)


def _in(session: CashDrawerSession, **more: Any) -> dict[str, Any]:
    return {
        "CashDrawerId": session.drawer_id,
        "CashDrawerSessionId": session.pk,
        "CashierUserId": session.cashier_id,
        **more,
    }


# --- the API ---------------------------------------------------------------------------------


def test_cashiering_school_requires_all_three_properties_at_once(accounts_api, cashiering, body):
    response = accounts_api.post(COMMAND, body, format="json")
    assert response.status_code == 422
    assert {e["property"] for e in response.json()["errors"]} == {
        "CashDrawerId",
        "CashDrawerSessionId",
        "CashierUserId",
    }
    assert not LedgerEntry.objects.exists()


def test_a_payment_goes_into_the_vendors_open_session(
    accounts_api, cashiering, body, vendor_session
):
    response = accounts_api.post(COMMAND, {**body, **_in(vendor_session)}, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()["payload"]["data"]
    assert (data["CashDrawerSessionId"], data["CashDrawerId"]) == (
        vendor_session.pk,
        vendor_session.drawer_id,
    )
    assert EntryBooking.objects.get().cash_session == vendor_session


def test_a_payment_into_a_reconciled_session_is_refused(
    accounts_api, cashiering, body, vendor_session, district_admin, student
):
    assert (
        accounts_api.post(COMMAND, {**body, **_in(vendor_session)}, format="json").status_code
        == 201
    )
    session_close(session=vendor_session, counted={"C": "40.00"}, user=district_admin)
    closed = accounts_api.post(COMMAND, {**body, **_in(vendor_session)}, format="json")
    assert closed.status_code == 422
    assert "closed" in closed.json()["errors"][0]["detail"]
    session_reconcile(session=vendor_session, user=district_admin, note="")
    refused = accounts_api.post(COMMAND, {**body, **_in(vendor_session)}, format="json")
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert error["property"] == "CashDrawerSessionId"
    assert "reconciled" in error["detail"] and "no more payments" in error["detail"]
    # Part 1's payments too, naming the drawer: its only session is reconciled.
    part1 = accounts_api.post(
        PAYMENTS,
        payment(
            student, CashDrawerId=vendor_session.drawer_id, CashDrawerSessionId=vendor_session.pk
        ),
        format="json",
    )
    assert part1.status_code == 422
    assert part1.json()["errors"][0]["property"] == "CashDrawerSessionId"
    assert LedgerEntry.objects.filter(kind="payment").count() == 1
    vendor_session.refresh_from_db()
    assert vendor_session.expected == {"C": "40.00"}


def test_a_session_of_another_drawer_or_cashier_is_refused(
    accounts_api, cashiering, body, vendor_session, drawer, clerk
):
    clerks = session_open(drawer=drawer, cashier=clerk)
    wrong_drawer = accounts_api.post(
        COMMAND, {**body, **_in(vendor_session, CashDrawerId=drawer.pk)}, format="json"
    )
    assert wrong_drawer.status_code == 422
    assert wrong_drawer.json()["errors"][0]["property"] == "CashDrawerSessionId"
    # The clerk's session is neither tied to this API user nor is the named cashier its own.
    other = StaffFactory(username="someone-else")
    not_theirs = accounts_api.post(
        COMMAND, {**body, **_in(clerks, CashierUserId=other.pk)}, format="json"
    )
    assert not_theirs.status_code == 422
    assert not_theirs.json()["errors"][0]["property"] == "CashDrawerSessionId"
    # Naming its cashier is what a vendor posting for a clerk's drawer does.
    assert accounts_api.post(COMMAND, {**body, **_in(clerks)}, format="json").status_code == 201


def test_part1_payment_finds_the_api_users_open_session(api, cashiering, student, vendor_session):
    response = api.post(
        PAYMENTS, payment(student, CashDrawerId=vendor_session.drawer_id), format="json"
    )
    assert response.status_code == 201, response.json()
    booking = LedgerEntry.objects.get(kind="payment").booking
    assert (booking.cash_session, booking.payment_type) == (vendor_session, "R")


# --- sessions --------------------------------------------------------------------------------


def test_a_drawer_has_one_open_session(drawer, clerk, district_admin):
    session = session_open(drawer=drawer, cashier=clerk)
    with pytest.raises(CashieringError, match="already has an open session"):
        session_open(drawer=drawer, cashier=district_admin)
    with pytest.raises(CashieringError, match="Counted C"):
        session_close(session=session, counted={"C": "-5.00"}, user=clerk)
    with pytest.raises(CashieringError, match="Unknown payment types: Z"):
        session_close(session=session, counted={"Z": "5.00"}, user=clerk)
    closed = session_close(session=session, counted={"C": "0.00", "H": "3"}, user=clerk)
    assert closed.counted == {"H": "3.00"}


def test_close_and_reconcile_record_expected_counted_and_difference(
    accounts_api, cashiering, body, vendor_session, district_admin, clerk
):
    for amount, ptype in (("40.00", "C"), ("25.50", "C"), ("100.00", "H")):
        posted = accounts_api.post(
            COMMAND,
            {**body, **_in(vendor_session), "TransactionAmount": amount, "PaymentType": ptype},
            format="json",
        )
        assert posted.status_code == 201, posted.json()
    with pytest.raises(CashieringError, match="cashier"):
        session_close(session=vendor_session, counted={"C": "60.00"}, user=clerk)
    closed = session_close(
        session=vendor_session, counted={"C": "60.00", "H": "100.00"}, user=district_admin
    )
    assert closed.expected == {"C": "65.50", "H": "100.00"}
    assert closed.counted == {"C": "60.00", "H": "100.00"}
    with pytest.raises(CashieringError, match="supervisor"):
        session_reconcile(session=closed, user=clerk, note="")
    with pytest.raises(CashieringError, match="say why"):
        session_reconcile(session=closed, user=district_admin, note=" ")
    done = session_reconcile(session=closed, user=district_admin, note="Change given twice")
    assert (done.status, done.difference, done.note, done.reconciled_by) == (
        "reconciled",
        Decimal("-5.50"),
        "Change given twice",
        district_admin,
    )
    with pytest.raises(CashieringError, match="only a closed session"):
        session_reconcile(session=done, user=district_admin, note="again")
    assert ledger_report().ok


@pytest.mark.ledger_breach
def test_ledger_check_finds_a_reconciled_session_whose_totals_differ_from_its_entries(
    accounts_api, cashiering, body, vendor_session, district_admin
):
    assert (
        accounts_api.post(COMMAND, {**body, **_in(vendor_session)}, format="json").status_code
        == 201
    )
    session_close(session=vendor_session, counted={"C": "40.00"}, user=district_admin)
    session_reconcile(session=vendor_session, user=district_admin, note="")
    assert ledger_report().ok
    CashDrawerSession.objects.filter(pk=vendor_session.pk).update(expected={"C": "30.00"})
    names = {b.check for b in ledger_report().breaches}
    assert {"session_expected", "session_difference"} <= names


@pytest.mark.ledger_breach
def test_ledger_check_finds_an_award_of_another_student(accounts_api, body):
    from apps.accounting.models import StudentAward
    from tests.factories import StudentFactory

    assert accounts_api.post(COMMAND, body, format="json").status_code == 201
    assert ledger_report().ok
    StudentAward.objects.update(student=StudentFactory())
    assert "award_student" in {b.check for b in ledger_report().breaches}


# --- the admin -------------------------------------------------------------------------------


def _pay_url(fee: Any) -> str:
    return reverse("admin:fees_fee_pay", args=[fee.pk])


def test_an_office_payment_needs_the_clerks_open_session(cashiering, student, drawer, clerk):
    fee = make_fee(student=student, amount="30.00")
    client = csrf_client(clerk)
    page = client.get(_pay_url(fee))
    assert "no open cash drawer session" in page.content.decode()
    refused = submit(client, _pay_url(fee), {"amount": "30.00", "method": "cash"})
    assert refused.status_code == 200
    assert "no open cash drawer session" in refused.content.decode()
    assert not LedgerEntry.objects.filter(kind="payment").exists()
    session = session_open(drawer=drawer, cashier=clerk)
    done = submit(client, _pay_url(fee), {"amount": "30.00", "method": "cash"}, follow=True)
    assert f"in cash drawer session {session.pk}" in done.content.decode()
    booking = LedgerEntry.objects.get(kind="payment").booking
    assert (booking.cash_session, booking.payment_type) == (session, "C")


def test_an_office_payment_outside_cashiering_is_booked_without_a_session(
    student, clerk, bank_account
):
    fee = make_fee(student=student, amount="30.00")
    # The fee's merchant account deposits into this school's bank account.
    BankAccount.objects.filter(pk=bank_account.pk).update(merchant_account=fee.merchant_account)
    submit(
        csrf_client(clerk),
        _pay_url(fee),
        {"amount": "12.00", "method": "check", "check_number": "101"},
    )
    booking = LedgerEntry.objects.get(kind="payment").booking
    assert (booking.cash_session, booking.payment_type, booking.bank_account) == (
        None,
        "H",
        bank_account,
    )


def test_a_closed_session_takes_no_office_payment(cashiering, student, drawer, clerk):
    fee = make_fee(student=student, amount="30.00")
    session = session_open(drawer=drawer, cashier=clerk)
    client = csrf_client(clerk)
    page = client.get(_pay_url(fee))  # the clerk opens the page while the session is open
    assert f"your session {session.pk}" in page.content.decode()
    session_close(session=session, counted={}, user=clerk)
    refused = submit(client, _pay_url(fee), {"amount": "30.00", "method": "cash"})
    assert "no open cash drawer session" in refused.content.decode()
    assert not LedgerEntry.objects.filter(kind="payment").exists()


def test_clerk_opens_and_closes_and_only_a_supervisor_reconciles_in_the_admin(
    drawer, clerk, district_admin
):
    client = csrf_client(clerk)
    opened = submit(
        client,
        reverse("admin:accounting_cashdrawersession_add"),
        {"drawer": str(drawer.pk)},
        follow=True,
    )
    session = CashDrawerSession.objects.get()
    assert f"Session {session.pk} opened at {drawer.name}" in opened.content.decode()
    assert session.cashier == clerk
    close = reverse("admin:accounting_session_close", args=[session.pk])
    closed = submit(client, close, {"C": "12.00"}, follow=True)
    assert "closed with $12.00 counted" in closed.content.decode()
    reconcile = reverse("admin:accounting_session_reconcile", args=[session.pk])
    assert client.get(reconcile).status_code == 403
    boss = csrf_client(district_admin)
    missing = submit(boss, reconcile, {"note": ""})
    assert "say why in the note" in missing.content.decode()
    done = submit(boss, reconcile, {"note": "Float left in"}, follow=True)
    assert "reconciled; difference $12.00" in done.content.decode()
    session.refresh_from_db()
    assert (session.status, session.difference) == ("reconciled", Decimal("12.00"))
    page = boss.get(reverse("admin:accounting_cashdrawersession_change", args=[session.pk]))
    assert "takes no more payments" in page.content.decode()


def test_a_payment_reaching_a_session_closed_meanwhile_is_refused_whole(student, drawer, clerk):
    from django.db import transaction

    from apps.accounting.services.cashiering import office_payment_book
    from apps.fees.services import Origin, payment_take

    fee = make_fee(student=student, amount="30.00")
    session = session_open(drawer=drawer, cashier=clerk)
    session_close(session=session, counted={}, user=clerk)
    with pytest.raises(CashieringError, match="closed"), transaction.atomic():
        entry = payment_take(fee=fee, amount="30.00", method="cash", origin=Origin(user=clerk))
        office_payment_book(entry=entry, session=session)
    assert not LedgerEntry.objects.filter(kind="payment").exists()


def test_only_the_district_admin_turns_cashiering_on_for_a_school(school, clerk, district_admin):
    url = reverse("admin:students_school_change", args=[school.pk])
    as_clerk = csrf_client(clerk).get(url).content.decode()
    assert 'name="cashiering"' not in as_clerk
    done = submit(
        csrf_client(district_admin),
        url,
        {"code": school.code, "name": school.name, "cashiering": "on"},
        follow=True,
    )
    assert done.status_code == 200
    school.refresh_from_db()
    assert school.cashiering


def test_the_sessions_list_says_what_to_do_when_empty(clerk):
    page = csrf_client(clerk).get(reverse("admin:accounting_cashdrawersession_changelist"))
    text = page.content.decode()
    assert "No cash drawer sessions yet" in text
    assert "Open a session" in text


def test_a_session_at_another_schools_drawer_is_refused(accounts_api, body, api_user, clerk):
    from tests.factories import SchoolFactory

    elsewhere = CashDrawer.objects.create(school=SchoolFactory(name="Lincoln"), name="Desk")
    session = session_open(drawer=elsewhere, cashier=clerk)
    response = accounts_api.post(
        COMMAND,
        {**body, "CashDrawerSessionId": session.pk, "CashierUserId": clerk.pk},
        format="json",
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["property"] == "CashDrawerSessionId" and "Lincoln" in error["detail"]


def test_a_part1_payment_is_booked_to_the_bank_account_of_its_merchant_account_at_the_school(
    api, integration, student, school, bank_account
):
    from apps.accounting.models import Bank
    from apps.vendors.models import MerchantAccountMapping
    from tests.factories import MerchantAccountFactory, SchoolFactory

    first, second = MerchantAccountFactory(), MerchantAccountFactory()
    MerchantAccountMapping.objects.create(integration=integration, merchant_account=first)
    MerchantAccountMapping.objects.create(integration=integration, merchant_account=second)
    # Decoys: the second mapping's account here, the first's at another school, an inactive
    # one at this school.
    BankAccount.objects.create(bank=bank_account.bank, name="Second", merchant_account=second)
    elsewhere = Bank.objects.create(school=SchoolFactory(name="Elsewhere"), name="Other")
    BankAccount.objects.create(bank=elsewhere, name="Other school", merchant_account=first)
    BankAccount.objects.create(
        bank=bank_account.bank, name="Closed", merchant_account=first, active=False
    )
    BankAccount.objects.filter(pk=bank_account.pk).update(merchant_account=first)
    response = api.post(PAYMENTS, payment(student, "20.00", "BK-1"), format="json")
    assert response.status_code == 201, response.json()
    booking = LedgerEntry.objects.get(external_id="BK-1").booking
    assert (booking.bank_account, booking.payment_type, str(booking.business_date)) == (
        bank_account,
        "R",
        "2026-09-15",
    )
    assert booking.entry.api_posting.description == "Paid online"


def test_a_part1_payment_without_a_bank_account_at_the_school_is_booked_without_one(api, student):
    response = api.post(PAYMENTS, payment(student, "20.00", "BK-2"), format="json")
    assert response.status_code == 201, response.json()
    booking = LedgerEntry.objects.get(external_id="BK-2").booking
    assert (booking.bank_account, booking.cash_session) == (None, None)
