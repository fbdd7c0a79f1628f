"""Two-step sign-in for staff: setting up an authenticator app, the code step after the
password, and the district's rule for district admins. Codes are computed from the key the
way the phone's app does (RFC 6238), against the real clock."""

from __future__ import annotations

import re
import time
from binascii import unhexlify

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.security.two_step import NEW_KEY
from tests.admin_helpers import csrf_client

from .conftest import PASSWORD

ADMIN_LOGIN = reverse("admin:login")
CODE_STEP = reverse("staff_login_code")
SETUP = reverse("staff_two_step")
ADMIN = reverse("admin:index")
FEES = reverse("admin:fees_fee_changelist")
pytestmark = pytest.mark.django_db


def code_for(key_hex: str, steps_ahead: int = 0) -> str:
    """What the phone shows now (or that many 30-second steps later)."""
    totp = TOTP(unhexlify(key_hex))
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def give_app(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def password_step(client, user, next_url=ADMIN):
    return client.post(
        ADMIN_LOGIN, {"username": user.username, "password": PASSWORD, "next": next_url}
    )


def signed_in_as(client) -> str | None:
    return client.session.get("_auth_user_id")


# --- setting it up ----------------------------------------------------------------------------


def test_staff_member_sets_up_an_app_from_the_qr_code_and_a_code(client, clerk):
    client = csrf_client(clerk)
    page = client.get(SETUP)
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and "QR code of your FeeSync sign-in key" in html
    key = client.session[NEW_KEY]
    secret = re.search(r'class="two-step-secret">([A-Z2-7 ]+)<', html).group(1)
    assert len(secret.replace(" ", "")) == 32  # the 20-byte key in base32, to type in
    assert 'autocomplete="one-time-code"' in html and 'inputmode="numeric"' in html
    assert '<label for="id_code">Code from your authenticator app:</label>' in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    response = client.post(
        SETUP, {"action": "confirm", "code": code_for(key), "csrfmiddlewaretoken": token}
    )

    assert response.status_code == 302 and response.url == ADMIN
    device = TOTPDevice.objects.get(user=clerk)
    assert device.confirmed and device.key == key
    assert NEW_KEY not in client.session
    assert client.get(ADMIN).status_code == 200  # this session has given a code
    assert "Two-step sign-in is <strong>on</strong>" in client.get(SETUP).content.decode()


def test_a_wrong_code_while_setting_up_is_refused_in_words(client, clerk):
    client.force_login(clerk)
    client.get(SETUP)
    key = client.session[NEW_KEY]
    wrong = f"{(int(code_for(key)) + 1) % 1_000_000:06d}"

    response = client.post(SETUP, {"action": "confirm", "code": wrong})

    assert response.status_code == 200
    assert "That code is not the one your authenticator app shows now" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=clerk).exists()
    assert client.session[NEW_KEY] == key  # the same QR code on the next try


def test_a_phone_whose_clock_runs_a_step_ahead_is_remembered_as_such(client, clerk):
    client.force_login(clerk)
    client.get(SETUP)
    key = client.session[NEW_KEY]

    client.post(SETUP, {"action": "confirm", "code": code_for(key, steps_ahead=1)})

    assert TOTPDevice.objects.get(user=clerk).drift == 1


def test_a_code_that_is_not_six_digits_says_what_is_expected(client, clerk):
    client.force_login(clerk)
    client.get(SETUP)

    response = client.post(SETUP, {"action": "confirm", "code": "12ab"})

    assert "Enter the six digits your authenticator app shows" in response.content.decode()


def test_setting_it_up_and_turning_it_off_are_in_the_audit_log(client, clerk):
    client.force_login(clerk)
    client.get(SETUP)
    key = client.session[NEW_KEY]
    client.post(SETUP, {"action": "confirm", "code": code_for(key)})
    device = TOTPDevice.objects.get(user=clerk)

    response = client.post(SETUP, {"action": "remove"})

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=clerk).exists()
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(TOTPDevice), object_pk=str(device.pk)
    ).order_by("timestamp")
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.DELETE]
    assert all(e.actor == clerk for e in entries)
    assert key not in str([e.changes for e in entries])  # never the secret
    assert "confirmed" in entries[0].changes_dict


def test_the_staff_site_links_to_the_page(client, clerk):
    client.force_login(clerk)

    assert f'href="{SETUP}"' in client.get(ADMIN).content.decode()


# --- signing in with it -----------------------------------------------------------------------


def test_the_password_alone_does_not_sign_in_a_staff_member_with_an_app(client, clerk):
    give_app(clerk)

    response = password_step(client, clerk, next_url=FEES)

    assert response.status_code == 302 and response.url == CODE_STEP
    assert signed_in_as(client) is None
    assert client.get(FEES).status_code == 302  # still signed out
    page = client.get(CODE_STEP).content.decode()
    assert '<label for="id_code">Code from your authenticator app:</label>' in page
    assert 'autocomplete="one-time-code"' in page and 'inputmode="numeric"' in page
    assert 'aria-describedby="id_code_helptext"' in page and 'id="id_code_helptext"' in page


def test_password_then_the_right_code_signs_in(client, clerk):
    device = give_app(clerk)
    password_step(client, clerk, next_url=FEES)

    response = client.post(CODE_STEP, {"code": code_for(device.key)})

    assert response.status_code == 302 and response.url == FEES
    assert signed_in_as(client) == str(clerk.pk)
    assert client.get(FEES).status_code == 200


def test_a_wrong_code_is_refused_in_words_and_signs_nobody_in(client, clerk):
    device = give_app(clerk)
    password_step(client, clerk)
    wrong = f"{(int(code_for(device.key)) + 1) % 1_000_000:06d}"

    response = client.post(CODE_STEP, {"code": wrong})

    assert response.status_code == 200
    assert "That code is not the one your authenticator app shows now" in response.content.decode()
    assert signed_in_as(client) is None
    assert 'aria-invalid="true"' in response.content.decode()


def test_wrong_codes_in_quick_succession_are_slowed_down(client, clerk):
    device = give_app(clerk)
    password_step(client, clerk)
    wrong = f"{(int(code_for(device.key)) + 1) % 1_000_000:06d}"
    client.post(CODE_STEP, {"code": wrong})

    response = client.post(CODE_STEP, {"code": code_for(device.key)})

    assert "Too many wrong codes. Wait until" in response.content.decode()
    assert signed_in_as(client) is None


def test_a_code_is_good_for_one_sign_in_only(client, clerk):
    device = give_app(clerk)
    code = code_for(device.key)
    password_step(client, clerk)
    client.post(CODE_STEP, {"code": code})
    client.post(reverse("admin:logout"))

    password_step(client, clerk)
    response = client.post(CODE_STEP, {"code": code})

    assert signed_in_as(client) is None and response.status_code == 200


def test_the_code_step_without_the_password_step_goes_back_to_sign_in(client, clerk):
    response = client.get(CODE_STEP)

    assert response.status_code == 302 and response.url == ADMIN_LOGIN


def test_set_up_then_sign_in_again_with_the_next_code(client, clerk):
    client.force_login(clerk)
    client.get(SETUP)
    key = client.session[NEW_KEY]
    client.post(SETUP, {"action": "confirm", "code": code_for(key)})
    client.post(reverse("admin:logout"))

    password_step(client, clerk)
    # The code just used is spent; the app's next one is accepted (one step of tolerance).
    client.post(CODE_STEP, {"code": code_for(key, steps_ahead=1)})

    assert signed_in_as(client) == str(clerk.pk)


def test_a_session_that_never_gave_a_code_is_signed_out_once_an_app_is_set_up(client, clerk):
    client.force_login(clerk)  # e.g. signed in on another computer before setting it up
    give_app(clerk)

    response = client.get(FEES)

    assert response.status_code == 302 and response.url.startswith(ADMIN_LOGIN)
    assert signed_in_as(client) is None


def test_staff_without_an_app_sign_in_with_the_password_alone(client, clerk):
    response = password_step(client, clerk)

    assert response.status_code == 302 and response.url == ADMIN
    assert signed_in_as(client) == str(clerk.pk)


# --- the district's rule for district admins ---------------------------------------------


@pytest.fixture
def required(settings):
    settings.FEESYNC_REQUIRE_2FA_FOR_ADMINS = True


def test_a_district_admin_without_an_app_lands_on_the_setup_page(client, district_admin, required):
    response = password_step(client, district_admin)
    assert response.status_code == 302 and response.url == ADMIN

    landing = client.get(ADMIN)

    assert landing.status_code == 302 and landing.url == SETUP
    page = client.get(SETUP).content.decode()
    assert "The district requires two-step sign-in for district admins" in page
    assert "<svg" in page


def test_a_district_admin_without_an_app_is_sent_back_from_other_admin_pages(
    client, district_admin, required
):
    client.force_login(district_admin)

    for url in (FEES, reverse("admin:vendors_integration_changelist"), ADMIN):
        response = client.get(url)
        assert response.status_code == 302 and response.url == SETUP, url
    assert client.post(reverse("admin:logout")).status_code in (200, 302)  # may still leave
    assert signed_in_as(client) is None


def test_once_set_up_the_district_admin_uses_the_staff_site(client, district_admin, required):
    client.force_login(district_admin)
    client.get(SETUP)
    key = client.session[NEW_KEY]

    client.post(SETUP, {"action": "confirm", "code": code_for(key)})

    assert client.get(FEES).status_code == 200


def test_a_district_admin_cannot_turn_it_off_while_the_district_requires_it(
    client, district_admin, required
):
    device = give_app(district_admin)
    password_step(client, district_admin)
    client.post(CODE_STEP, {"code": code_for(device.key)})

    response = client.post(SETUP, {"action": "remove"}, follow=True)

    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert "so it stays on" in response.content.decode()


def test_a_clerk_is_not_required_to_set_it_up(client, clerk, required):
    password_step(client, clerk)

    assert client.get(FEES).status_code == 200


def test_without_the_district_setting_a_district_admin_is_not_required(client, district_admin):
    password_step(client, district_admin)

    assert client.get(ADMIN).status_code == 200


def test_parents_are_never_asked_for_a_code(client, make_parent, required):
    parent = make_parent()
    give_app(parent)  # even with a device somehow on the account

    response = client.post(
        reverse("portal:login"), {"username": parent.username, "password": PASSWORD}
    )

    assert response.status_code == 302 and response.url == reverse("portal:fees")
    assert client.get(reverse("portal:fees")).status_code == 200
