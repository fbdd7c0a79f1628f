"""The student's credit on the staff site (the student's page, its "Apply to a fee" and
"Refund" pages, the Credits list) and on the parent's Fees and Fines page."""

from __future__ import annotations

import html
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse

from apps.fees.models import Allocation, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import (
    Movement,
    MovementKind,
    MovementSource,
    movements_record,
    student_credit,
)
from tests.admin_helpers import csrf_client, page_form_values, submit
from tests.factories import GuardianFactory, StudentFactory, make_fee

pytestmark = pytest.mark.django_db

D = Decimal
VENDOR = MovementSource(
    external_source="integration:7", name="PaySchools", ledger_source=LedgerEntry.Source.VENDOR
)


def overpaid_student(amount: str = "60.00", owed: str = "50.00"):
    """A student who paid `amount` at a vendor for a fee of `owed`, and has another fee."""
    student = StudentFactory(first_name="Ana", last_name="Lima")
    paid = make_fee(student=student, amount=owed, description="Band trip")
    other = make_fee(student=student, amount="25.00", description="Chromebook fee")
    movements_record(
        source=VENDOR,
        movements=[Movement("P-1", MovementKind.PAYMENT, paid.reference, D(amount))],
    )
    return student, paid, other


def student_url(student, *parts: str) -> str:
    if parts:
        return reverse(f"admin:students_student_credit_{parts[0]}", args=[student.pk])
    return reverse("admin:students_student_change", args=[student.pk])


def test_the_student_page_shows_the_credit_and_its_two_actions(clerk):
    student, _, _ = overpaid_student()
    page = csrf_client(clerk).get(student_url(student)).content.decode()
    assert "Credit on account" in page and "$10.00" in page
    assert student_url(student, "apply") in page and student_url(student, "refund") in page
    assert "Apply to a fee" in page and "Refund" in page


def test_support_staff_see_the_credit_but_not_the_actions(support_user):
    student, _, _ = overpaid_student()
    client = csrf_client(support_user)
    page = client.get(student_url(student)).content.decode()
    assert "$10.00" in page and student_url(student, "apply") not in page
    assert client.get(student_url(student, "apply")).status_code == 403


def test_a_clerk_applies_the_credit_to_another_fee(clerk):
    student, _, other = overpaid_student()
    response = submit(
        csrf_client(clerk), student_url(student, "apply"), {"fee": other.pk}, follow=True
    )
    messages = [str(m) for m in response.context["messages"]]
    assert any(
        f"$10.00 of credit applied to fee {other.reference}; $15.00 is still owed" in m
        for m in messages
    )
    other.refresh_from_db()
    assert other.balance == D("15.00") and student_credit(student=student) == D("0.00")
    assert Allocation.objects.get(debit__fee=other).manual
    assert ledger_report().ok


def test_applying_more_than_the_credit_is_refused_and_changes_nothing(clerk):
    student, _, other = overpaid_student()
    response = submit(
        csrf_client(clerk), student_url(student, "apply"), {"fee": other.pk, "amount": "12.00"}
    )
    assert response.status_code == 200
    assert "$12.00 is more than Ana Lima's credit ($10.00)." in html.unescape(
        response.content.decode()
    )
    other.refresh_from_db()
    assert other.balance == D("25.00") and student_credit(student=student) == D("10.00")


def test_a_comma_decimal_on_the_credit_pages_is_refused_not_read_as_thousands(clerk):
    student, _, other = overpaid_student(amount="2000.00", owed="50.00")
    response = submit(
        csrf_client(clerk), student_url(student, "apply"), {"fee": other.pk, "amount": "12,50"}
    )
    assert "“12,50” uses a comma as the decimal mark" in response.content.decode()
    assert student_credit(student=student) == D("1950.00")


def test_a_clerk_refunds_the_credit_by_check(clerk):
    student, paid, _ = overpaid_student()
    client = csrf_client(clerk)
    missing = submit(client, student_url(student, "refund"), {"reason": "Overpaid"})
    assert "Enter the check number for a refund by check." in missing.content.decode()
    response = submit(
        client,
        student_url(student, "refund"),
        {"reason": "Overpaid at PaySchools", "check_number": "2001"},
        follow=True,
    )
    assert any(
        "Refund of $10.00 of credit recorded; $0.00 of credit is left." in str(m)
        for m in response.context["messages"]
    )
    refund = LedgerEntry.objects.get(kind="refund")
    assert (refund.fee_id, refund.check_number, refund.created_by) == (None, "2001", clerk)
    paid.refresh_from_db()
    assert paid.balance == D("0.00")
    assert ledger_report().ok


def test_the_credits_list_shows_students_with_credit(clerk):
    student, _, _ = overpaid_student()
    nobody = StudentFactory(last_name="Zero")
    make_fee(student=nobody)
    page = csrf_client(clerk).get(reverse("admin:fees_studentcredit_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Lima, Ana" in text and "$10.00" in text and "Zero" not in text


def test_credit_pages_of_a_student_that_is_not_there_are_404(clerk):
    client = csrf_client(clerk)
    for bad in ("abc", "999999"):
        assert client.get(f"/admin/students/student/{bad}/credit/apply/").status_code == 404
        assert client.get(f"/admin/fees/studentcredit/{bad}/change/").status_code in (302, 404)


def test_the_parent_sees_the_credit_on_the_childs_account(client):
    student, _, _ = overpaid_student()
    guardian = GuardianFactory()
    guardian.students.add(student)
    client.force_login(guardian.user)
    page = client.get(reverse("portal:fees")).content.decode()
    assert "Credit on account: $10.00" in page


def test_a_refund_of_credit_is_never_hidden_by_the_parents_page_cache(client, settings):
    from django.core.cache import cache

    from apps.fees.services import Origin, credit_refund

    settings.PORTAL_PAGE_CACHE_SECONDS = 60
    cache.clear()
    student, _, _ = overpaid_student()
    guardian = GuardianFactory()
    guardian.students.add(student)
    client.force_login(guardian.user)
    assert "Credit on account: $10.00" in client.get(reverse("portal:fees")).content.decode()
    credit_refund(student=student, amount="4.00", reason="Part back", origin=Origin())
    assert "Credit on account: $6.00" in client.get(reverse("portal:fees")).content.decode()
    cache.clear()


# --- a staff posting happens once: the credit pages carry the one-time token ------------------


def _form(client: Client, url: str, data: dict[str, Any]) -> dict[str, Any]:
    page = client.get(url)
    assert page.status_code == 200
    values = page_form_values(page.content)
    assert values["token"]  # the page's hidden one-time token
    values.update(data)
    return {k: v for k, v in values.items() if v is not None}


def _messages_on(client: Client, url: str) -> list[str]:
    return [str(m) for m in client.get(url).context["messages"]]


def test_a_credit_form_without_its_token_is_refused_as_out_of_date(clerk):
    student, _, other = overpaid_student()
    client = csrf_client(clerk)
    form = _form(client, student_url(student, "apply"), {"fee": other.pk})
    del form["token"]
    response = client.post(student_url(student, "apply"), form)
    assert response.status_code == 200
    assert "This page is out of date" in response.content.decode()
    assert student_credit(student=student) == D("10.00")


def test_a_resubmitted_credit_form_shows_the_first_result_and_applies_nothing_more(clerk):
    student, _, other = overpaid_student(amount="80.00")  # $30.00 of credit
    client = csrf_client(clerk)
    form = _form(client, student_url(student, "apply"), {"fee": other.pk, "amount": "5.00"})
    client.post(student_url(student, "apply"), form)
    client.post(student_url(student, "apply"), form)  # "post again?"
    [first, again] = _messages_on(client, student_url(student))
    assert first.startswith(f"$5.00 of credit applied to fee {other.reference}")
    assert again.startswith(f"This credit of $5.00 to fee {other.reference} was already recorded")
    assert again.endswith("by clerk-t; nothing was recorded twice.")
    assert student_credit(student=student) == D("25.00")
    # A new page is a new application.
    submit(client, student_url(student, "apply"), {"fee": other.pk, "amount": "5.00"})
    assert student_credit(student=student) == D("20.00")
    assert ledger_report().ok


def _at_the_same_moment(clerk, url: str, form: dict[str, Any]) -> list[Client]:
    """The same form sent twice at once (a double click), by one clerk in two requests."""
    clients = [Client(), Client()]
    for c in clients:
        c.force_login(clerk)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(c: Client) -> None:
        try:
            barrier.wait()
            statuses.append(c.post(url, form).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [302, 302]
    return clients


@pytest.mark.django_db(transaction=True)
def test_two_identical_credit_apply_submissions_at_the_same_moment_apply_it_once(clerk):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency are a PostgreSQL matter")
    student, _, other = overpaid_student(amount="80.00")  # $30.00 of credit
    url = student_url(student, "apply")
    form = _form(csrf_client(clerk), url, {"fee": other.pk, "amount": "10.00"})
    clients = _at_the_same_moment(clerk, url, form)
    other.refresh_from_db()
    assert other.balance == D("15.00") and student_credit(student=student) == D("20.00")
    assert Allocation.objects.filter(debit__fee=other).count() == 1
    said = sorted(m for c in clients for m in _messages_on(c, student_url(student)))
    assert said[0].startswith(f"$10.00 of credit applied to fee {other.reference}")
    assert said[1].startswith("This credit of $10.00") and "nothing was recorded twice" in said[1]
    assert ledger_report().ok


@pytest.mark.django_db(transaction=True)
def test_two_identical_credit_refund_submissions_at_the_same_moment_refund_it_once(clerk):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency are a PostgreSQL matter")
    student, _, _ = overpaid_student(amount="80.00")  # $30.00 of credit
    url = student_url(student, "refund")
    form = _form(
        csrf_client(clerk),
        url,
        {"amount": "12.00", "reason": "Overpaid at PaySchools", "check_number": "2002"},
    )
    clients = _at_the_same_moment(clerk, url, form)
    assert LedgerEntry.objects.filter(kind="refund").count() == 1
    assert student_credit(student=student) == D("18.00")
    said = sorted(m for c in clients for m in _messages_on(c, student_url(student)))
    assert said[0] == "Refund of $12.00 of credit recorded; $18.00 of credit is left."
    assert said[1].startswith("This refund was already recorded at ")
    assert said[1].endswith("by clerk-t; nothing was recorded twice.")
    assert ledger_report().ok
