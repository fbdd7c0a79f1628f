"""Signing in to the parent portal: parents only, throttled by django-axes, password reset by
e-mail, and never waiting on a vendor."""

from __future__ import annotations

import re
import time

import pytest
from django.core import mail
from django.urls import reverse

from apps.vendors.models import Integration
from tests.factories import StaffFactory, UserFactory, make_fee

from .conftest import IN_SCOPE, PASSWORD

LOGIN = reverse("portal:login")
FEES = reverse("portal:fees")
pytestmark = pytest.mark.django_db


def sign_in(client, username: str, password: str = PASSWORD):
    return client.post(LOGIN, {"username": username, "password": password})


def test_parent_signs_in_and_lands_on_fees_and_fines(make_family, client):
    family = make_family(1)

    response = sign_in(client, family.user.username)

    assert response.status_code == 302 and response.url == FEES
    assert client.get(FEES).status_code == 200


def test_sign_in_page_has_labelled_fields_and_a_reset_link(client, db):
    import lxml.html

    page = client.get(LOGIN).content.decode()
    doc = lxml.html.fromstring(page)

    # The star of a required field is hidden from screen readers: the name is the label.
    def label(for_id: str) -> str:
        (found,) = doc.xpath(f"//label[@for='{for_id}']")
        for hidden in found.xpath(".//*[@aria-hidden='true']"):
            hidden.drop_tree()
        return " ".join(found.text_content().split())

    assert label("id_username") == "Username"
    assert label("id_password") == "Password"
    assert reverse("portal:password_reset") in page


def test_wrong_password_says_so_and_signs_nobody_in(make_family, client):
    family = make_family(1)

    response = sign_in(client, family.user.username, "not-the-password")

    assert response.status_code == 200
    assert "do not match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_anonymous_visitor_is_sent_to_the_portal_sign_in(client, db):
    response = client.get(FEES)

    assert response.status_code == 302
    assert response.url.startswith(LOGIN + "?next=")


def test_staff_account_is_refused_at_portal_sign_in(client, db):
    staff = StaffFactory(username="clerk-portal")

    response = sign_in(client, staff.username)

    assert response.status_code == 200
    assert "Staff accounts sign in at the staff site" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_not_linked_to_a_guardian_is_refused(client, db):
    user = UserFactory(username="someone")

    response = sign_in(client, user.username)

    assert "not linked to any student" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_staff_session_gets_a_403_page_on_every_portal_page(make_family, client, db):
    family = make_family(1)
    child = family.children[0]
    client.force_login(StaffFactory(username="admin-portal"))

    for url in (
        FEES,
        reverse("portal:student", args=[child.pk]),
        reverse("portal:section", args=[child.pk, "documents"]),
    ):
        response = client.get(url)
        assert response.status_code == 403, url
        page = response.content.decode()
        assert "district staff account" in page and child.full_name not in page


def test_sign_out_returns_to_the_sign_in_page(make_family, client):
    family = make_family(1)
    sign_in(client, family.user.username)

    response = client.post(reverse("portal:logout"))

    assert response.status_code == 302 and response.url == LOGIN
    assert client.get(FEES).status_code == 302


# --- django-axes -------------------------------------------------------------------------------


def test_ten_wrong_passwords_lock_the_account_even_against_the_right_one(make_family, client):
    family = make_family(1)
    username = family.user.username

    for attempt in range(1, 11):
        response = sign_in(client, username, f"wrong-{attempt}")
        assert response.status_code in (200, 429), attempt
    eleventh = sign_in(client, username, PASSWORD)

    assert eleventh.status_code == 429
    page = eleventh.content.decode()
    assert "Sign-in is paused" in page
    assert "too many wrong passwords" in page
    assert "15 minutes" in page
    assert reverse("portal:password_reset") in page
    assert "_auth_user_id" not in client.session


def test_nine_wrong_passwords_do_not_lock(make_family, client):
    family = make_family(1)
    for attempt in range(9):
        sign_in(client, family.user.username, f"wrong-{attempt}")

    assert sign_in(client, family.user.username).status_code == 302


def test_lockout_of_one_parent_does_not_lock_another(make_family, client):
    locked, other = make_family(1), make_family(1)
    for attempt in range(10):
        sign_in(client, locked.user.username, f"wrong-{attempt}")

    assert sign_in(client, other.user.username).status_code == 302


# --- password reset by e-mail --------------------------------------------------------------------


def _reset_link(message) -> str:
    match = re.search(r"http://testserver(/portal/password-reset/[^/\s]+/[^/\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_parent_resets_password_by_email_and_signs_in_with_it(make_family, client):
    family = make_family(1)
    family.user.email = "parent@example.org"
    family.user.save()

    response = client.post(reverse("portal:password_reset"), {"email": "Parent@Example.org"})
    assert response.status_code == 302 and response.url == reverse("portal:password_reset_done")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["parent@example.org"]

    form_url = client.get(_reset_link(mail.outbox[0])).url  # Django moves the token to the session
    page = client.get(form_url).content.decode()
    assert "Choose a new password" in page and 'for="id_new_password1"' in page
    done = client.post(
        form_url, {"new_password1": "a-Fresh-pass-2026", "new_password2": "a-Fresh-pass-2026"}
    )
    assert done.url == reverse("portal:password_reset_complete")

    assert sign_in(client, family.user.username, "a-Fresh-pass-2026").status_code == 302


def test_password_reset_ends_a_lockout(make_family, client):
    family = make_family(1)
    family.user.email = "locked@example.org"
    family.user.save()
    for attempt in range(10):
        sign_in(client, family.user.username, f"wrong-{attempt}")
    assert sign_in(client, family.user.username).status_code == 429

    client.post(reverse("portal:password_reset"), {"email": "locked@example.org"})
    form_url = client.get(_reset_link(mail.outbox[0])).url
    client.post(form_url, {"new_password1": "New-pass-2026!", "new_password2": "New-pass-2026!"})

    assert sign_in(client, family.user.username, "New-pass-2026!").status_code == 302


def test_password_reset_never_mails_a_staff_account(client, db):
    StaffFactory(username="clerk-reset", email="clerk@example.org")

    response = client.post(reverse("portal:password_reset"), {"email": "clerk@example.org"})

    assert response.status_code == 302  # the same answer as for anyone: no account probing
    assert mail.outbox == []


def test_password_reset_of_an_unknown_address_sends_nothing_and_says_the_same(client, db):
    response = client.post(reverse("portal:password_reset"), {"email": "nobody@example.org"})

    assert response.url == reverse("portal:password_reset_done")
    assert mail.outbox == []


def test_a_staff_reset_link_is_not_honoured_by_the_portal(client, db):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    staff = StaffFactory(username="admin-reset")
    uid = urlsafe_base64_encode(force_bytes(staff.pk))
    token = default_token_generator.make_token(staff)
    url = reverse("portal:password_reset_confirm", args=[uid, token])

    page = client.get(url, follow=True).content.decode()

    assert "This link no longer works" in page


# --- signing in never waits on the vendor ------------------------------------------------------


def test_sign_in_is_quick_while_the_vendor_is_down_and_the_failure_is_for_staff_only(
    make_family, make_integration, client, django_capture_on_commit_callbacks
):
    integration = make_integration()  # enabled, pointing at a closed port on loopback
    family = make_family(2)
    for child in family.children:
        make_fee(student=child, fee_date=IN_SCOPE, description="Field trip")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        started = time.perf_counter()
        response = sign_in(client, family.user.username)
        elapsed = time.perf_counter() - started

    assert response.status_code == 302 and response.url == FEES
    assert elapsed < 2.0, f"sign-in took {elapsed:.2f}s"
    assert len(callbacks) == 1  # the background pull, queued for after the commit
    integration.refresh_from_db()
    assert integration.last_error  # the pull ran (eager Celery) and failed: staff see it

    page = client.get(FEES).content.decode()
    assert "Field trip" in page
    assert integration.last_error not in page
    for word in ("did not answer", "refused", "error", "Error"):
        assert word not in page


def test_sign_in_with_a_disabled_integration_queues_no_pull(
    make_family, make_integration, client, django_capture_on_commit_callbacks
):
    make_integration(enabled=False)
    family = make_family(1)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert sign_in(client, family.user.username).status_code == 302

    assert callbacks == []
    assert not Integration.objects.exclude(last_error="").exists()
