"""A staff posting happens once: double clicks, resubmitted pages and a check typed twice,
driven through the real staff pages as a clerk would (issue 10 item 7)."""

from __future__ import annotations

import re
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from apps.fees.models import Fee, LedgerEntry
from apps.fees.once import STAFF_FORM_SOURCE
from apps.fees.selectors import ledger_report
from apps.fees.services import Origin, payment_take
from tests.admin_helpers import csrf_client, page_form_values, submit
from tests.factories import (
    CategoryFactory,
    MerchantAccountFactory,
    StudentFactory,
    make_fee,
)

pytestmark = pytest.mark.django_db


def url(name: str, *args: object) -> str:
    return reverse(f"admin:{name}", args=args)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def errors_of(response: Any) -> str:
    return str(response.context["adminform"].form.errors)


def form_of(client: Client, page_url: str, data: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """What the browser would send: the page's own form (token included), as typed."""
    page = client.get(page_url)
    assert page.status_code == 200
    values = page_form_values(page.content, **kw)
    values.update(data)
    return {k: v for k, v in values.items() if v is not None}


ALREADY = re.compile(
    r"^This (?P<what>[a-z ]+) was already recorded at \d\d:\d\d(?: on [^;]+)? by clerk-t; "
    r"nothing was recorded twice\.$"
)


# --- a resubmitted page -----------------------------------------------------------------------


def test_a_resubmitted_payment_shows_the_first_result_and_records_nothing(clerk):
    fee = make_fee(amount="50.00")
    client = csrf_client(clerk)
    sent = form_of(client, url("fees_fee_pay", fee.pk), {"amount": "20.00", "method": "cash"})

    first = client.post(url("fees_fee_pay", fee.pk), sent, follow=True)
    again = client.post(url("fees_fee_pay", fee.pk), sent, follow=True)

    assert "Payment of $20.00 recorded; $30.00 is still owed." in messages_of(first)
    said = messages_of(again)[-1]
    assert ALREADY.match(said), said
    assert said.startswith("This payment was already recorded at ")
    assert (
        timezone.localtime(LedgerEntry.objects.get(kind="payment").created_at).strftime("%H:%M")
        in said
    )
    assert again.redirect_chain[-1][0] == url("fees_fee_change", fee.pk)
    fee.refresh_from_db()
    assert fee.balance == Decimal("30.00")
    payment = LedgerEntry.objects.get(fee=fee, kind="payment")
    assert (payment.external_source, payment.created_by, payment.source) == (
        STAFF_FORM_SOURCE,
        clerk,
        "staff",
    )
    assert payment.external_id == sent["token"]
    # The token is bookkeeping: clerks see who posted the entry, not a uuid.
    for page in (url("fees_ledgerentry_changelist"), url("fees_fee_change", fee.pk)):
        assert sent["token"] not in client.get(page).content.decode()


def test_opening_the_page_again_is_a_new_payment(clerk):
    """The token belongs to one showing of the form: two real payments are both recorded."""
    fee = make_fee(amount="50.00")
    client = csrf_client(clerk)

    for _ in range(2):
        submit(client, url("fees_fee_pay", fee.pk), {"amount": "10.00", "method": "cash"})

    assert LedgerEntry.objects.filter(fee=fee, kind="payment").count() == 2
    fee.refresh_from_db()
    assert fee.balance == Decimal("30.00")


def test_a_payment_form_without_its_token_is_refused_as_out_of_date(clerk):
    fee = make_fee(amount="50.00")
    client = csrf_client(clerk)
    sent = form_of(client, url("fees_fee_pay", fee.pk), {"amount": "20.00", "method": "cash"})
    del sent["token"]

    response = client.post(url("fees_fee_pay", fee.pk), sent)

    assert response.status_code == 200
    assert "This page is out of date: open it again" in errors_of(response)
    assert not LedgerEntry.objects.filter(fee=fee, kind="payment").exists()


def _paid(fee: Fee) -> Fee:
    payment_take(fee=fee, amount="50.00", method="cash", origin=Origin())
    return fee


@pytest.mark.parametrize(
    ("action", "prepare", "data", "what", "kind"),
    [
        ("waive", None, {"amount": "15.00", "reason": "Hardship"}, "waiver", "waiver"),
        ("void", None, {"reason": "Wrong student"}, "void", "void"),
        ("refund", _paid, {"amount": "20.00", "reason": "Trip shortened"}, "refund", "refund"),
    ],
)
def test_every_money_form_on_a_fee_is_recorded_once(clerk, action, prepare, data, what, kind):
    fee = make_fee(amount="50.00")
    if prepare:
        prepare(fee)
    client = csrf_client(clerk)
    sent = form_of(client, url(f"fees_fee_{action}", fee.pk), data)

    client.post(url(f"fees_fee_{action}", fee.pk), sent)
    again = client.post(url(f"fees_fee_{action}", fee.pk), sent, follow=True)

    said = messages_of(again)[-1]
    assert ALREADY.match(said) and ALREADY.match(said)["what"] == what, said
    assert LedgerEntry.objects.filter(fee=fee, kind=kind).count() == 1
    assert ledger_report().ok


def test_charging_a_fee_twice_from_one_form_charges_it_once(clerk):
    student = StudentFactory()
    client = csrf_client(clerk)
    page_url = url("fees_fee_add") + f"?student={student.pk}"
    sent = form_of(
        client,
        page_url,
        {
            "category": str(CategoryFactory().pk),
            "merchant_account": str(MerchantAccountFactory().pk),
            "description": "Library fine",
            "amount": "3.25",
            "fee_date": "2026-09-15",
        },
    )

    client.post(page_url, sent)
    again = client.post(page_url, sent, follow=True)

    fee = Fee.objects.get(student=student)
    said = messages_of(again)[-1]
    assert ALREADY.match(said) and ALREADY.match(said)["what"] == "fee", said
    assert again.redirect_chain[-1][0] == url("fees_fee_change", fee.pk)


def test_an_amount_change_sent_twice_is_posted_once_and_the_message_shows_the_new_amount(clerk):
    fee = make_fee(amount="50.00", description="Museum trip")
    client = csrf_client(clerk)
    sent = form_of(
        client,
        url("fees_fee_change", fee.pk),
        {"amount": "65.00", "reason": "Bus cost went up"},
        form_id="fee_form",
    )

    first = client.post(url("fees_fee_change", fee.pk), sent, follow=True)
    again = client.post(url("fees_fee_change", fee.pk), sent, follow=True)

    said = messages_of(first)
    assert "Amount changed from $50.00 to $65.00; $65.00 is still owed." in said
    # The admin's own message names the fee as it is now, not as the form last saw it.
    changed = [m for m in said if "was changed successfully" in m]
    assert changed and "$65.00" in changed[0] and "$50.00" not in changed[0], said
    assert any(ALREADY.match(m) for m in messages_of(again)), messages_of(again)
    assert LedgerEntry.objects.filter(fee=fee, kind="debit_adjustment").count() == 1
    fee.refresh_from_db()
    assert (fee.amount, fee.balance) == (Decimal("65.00"), Decimal("65.00"))


# --- two identical submissions at the same moment ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_identical_payment_submissions_at_the_same_moment_record_one_payment(clerk):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency are a PostgreSQL matter")
    fee = make_fee(amount="50.00")
    clients = [Client(), Client()]
    for client in clients:
        client.force_login(clerk)  # one clerk, one form, sent twice (a double click)
    sent = form_of(clients[0], url("fees_fee_pay", fee.pk), {"amount": "20.00", "method": "cash"})
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(client: Client) -> None:
        try:
            barrier.wait()
            statuses.append(client.post(url("fees_fee_pay", fee.pk), sent).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses == [302, 302]
    assert LedgerEntry.objects.filter(fee=fee, kind="payment").count() == 1
    fee.refresh_from_db()
    assert fee.balance == Decimal("30.00")
    # Each browser tab lands on the fee's page: one says it was recorded, the other that
    # it already was.
    said = sorted(m for c in clients for m in messages_of(c.get(url("fees_fee_change", fee.pk))))
    assert len(said) == 2
    assert said[0] == "Payment of $20.00 recorded; $30.00 is still owed."
    assert ALREADY.match(said[1]), said
    assert ledger_report().ok


@pytest.mark.django_db(transaction=True)
def test_two_identical_charge_submissions_at_the_same_moment_charge_one_fee(clerk):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency are a PostgreSQL matter")
    student = StudentFactory()
    page_url = url("fees_fee_add") + f"?student={student.pk}"
    clients = [Client(), Client()]
    for client in clients:
        client.force_login(clerk)
    sent = form_of(
        clients[0],
        page_url,
        {
            "category": str(CategoryFactory().pk),
            "merchant_account": str(MerchantAccountFactory().pk),
            "description": "Library fine",
            "amount": "3.25",
            "fee_date": "2026-09-15",
        },
    )
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(client: Client) -> None:
        try:
            barrier.wait()
            statuses.append(client.post(page_url, sent).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses == [302, 302]
    assert Fee.objects.filter(student=student).count() == 1
    assert LedgerEntry.objects.filter(student=student, kind="charge").count() == 1
    assert ledger_report().ok


# --- the same check twice ------------------------------------------------------------------------


def test_a_check_number_already_recorded_for_the_student_asks_for_confirmation(clerk):
    student = StudentFactory()
    first_fee = make_fee(student=student, amount="40.00")
    second_fee = make_fee(student=student, amount="25.00")
    payment_take(
        fee=first_fee,
        amount="20.00",
        method="check",
        check_number="4101",
        origin=Origin(user=clerk),
    )
    client = csrf_client(clerk)
    pay_url = url("fees_fee_pay", second_fee.pk)

    asked = submit(client, pay_url, {"amount": "25.00", "method": "check", "check_number": "4101"})

    assert asked.status_code == 200
    when = timezone.localtime(LedgerEntry.objects.get(check_number="4101").created_at)
    message = str(asked.context["adminform"].form.errors["check_number"][0])
    assert message.startswith(
        f"Check 4101 was already recorded for this student on {date_format(when, 'DATE_FORMAT')}"
        f" ($20.00 on fee {first_fee.reference}); "
    ), message
    assert message.endswith("submit again to record it anyway.")
    html = asked.content.decode()
    # A real checkbox with its own label and help, right under the check number.
    assert 'for="id_record_check_again">Yes, record check 4101 again</label>' in html
    assert 'aria-describedby="id_record_check_again_helptext"' in html
    assert not LedgerEntry.objects.filter(fee=second_fee, kind="payment").exists()

    # Sent again without ticking the box: still asked, still nothing recorded.
    values = page_form_values(asked.content)
    again = client.post(pay_url, values)
    assert "Check 4101 was already recorded" in errors_of(again)
    assert not LedgerEntry.objects.filter(fee=second_fee, kind="payment").exists()

    values["record_check_again"] = "on"
    done = client.post(pay_url, values, follow=True)
    assert "Payment of $25.00 recorded; nothing is owed on this fee now (paid)." in messages_of(
        done
    )
    assert LedgerEntry.objects.filter(check_number="4101", kind="payment").count() == 2


def test_the_same_check_number_for_another_student_is_not_asked_about(clerk):
    other = make_fee(amount="40.00")
    payment_take(fee=other, amount="20.00", method="check", check_number="4101", origin=Origin())
    fee = make_fee(amount="25.00")

    response = submit(
        csrf_client(clerk),
        url("fees_fee_pay", fee.pk),
        {"amount": "25.00", "method": "check", "check_number": "4101"},
        follow=True,
    )

    assert any("Payment of $25.00 recorded" in m for m in messages_of(response))
    assert "record_check_again" not in response.content.decode()
