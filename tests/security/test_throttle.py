"""The wrong-password throttle: a username is paused per address, an address is paused
across usernames at a higher limit, and the address is the connection's own unless the
district says how many proxies of its own stand in front."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings
from django.urls import reverse

from config.security.throttle import client_address
from tests.factories import StaffFactory

from .conftest import PASSWORD

ADMIN_LOGIN = reverse("admin:login")
PORTAL_LOGIN = reverse("portal:login")
HERE, ELSEWHERE = "203.0.113.10", "198.51.100.20"
pytestmark = pytest.mark.django_db


def admin_sign_in(client, username, password=PASSWORD, address=HERE, **extra):
    return client.post(
        ADMIN_LOGIN,
        {"username": username, "password": password, "next": reverse("admin:index")},
        REMOTE_ADDR=address,
        **extra,
    )


def portal_sign_in(client, username, password=PASSWORD, address=HERE):
    return client.post(
        PORTAL_LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_eleven_wrong_passwords_for_admin_from_one_address_do_not_lock_admin_out_elsewhere(
    client, district_admin
):
    for attempt in range(11):
        admin_sign_in(client, district_admin.username, f"wrong-{attempt}")
    assert admin_sign_in(client, district_admin.username).status_code == 429

    response = admin_sign_in(client, district_admin.username, address=ELSEWHERE)

    assert response.status_code == 302 and response.url == reverse("admin:index")
    assert client.session["_auth_user_id"] == str(district_admin.pk)


def test_the_username_and_address_pair_is_paused_after_the_pair_limit(client, clerk):
    for attempt in range(9):
        assert admin_sign_in(client, clerk.username, f"wrong-{attempt}").status_code == 200
    tenth = admin_sign_in(client, clerk.username, "wrong-10")

    assert tenth.status_code == 429
    assert "too many login attempts" in tenth.content.decode()
    assert admin_sign_in(client, clerk.username).status_code == 429
    assert "_auth_user_id" not in client.session


def test_one_address_trying_many_usernames_is_paused_after_the_address_limit(client, make_parent):
    parent = make_parent()
    for n in range(49):  # 49 usernames, one wrong password each: under both limits
        portal_sign_in(client, f"guess-{n}", "Spring2026!")
    assert portal_sign_in(client, parent.username).status_code == 302
    client.post(reverse("portal:logout"))

    fiftieth = portal_sign_in(client, "guess-49", "Spring2026!")

    assert fiftieth.status_code == 429
    assert "Sign-in is paused" in fiftieth.content.decode()  # the parents' page, unchanged
    paused = portal_sign_in(client, parent.username)
    assert paused.status_code == 429 and "_auth_user_id" not in client.session
    # The same parent from another address is not paused.
    assert portal_sign_in(client, parent.username, address=ELSEWHERE).status_code == 302


@override_settings(FEESYNC_ADDRESS_FAILURE_LIMIT=12)
def test_a_successful_sign_in_takes_its_wrong_passwords_off_the_address_count(client, make_parent):
    # Six parents behind one school address each mistype twice, then get it right: twelve
    # wrong passwords, but none of them still counts against the address.
    for parent in [make_parent() for _ in range(6)]:
        for attempt in range(2):
            portal_sign_in(client, parent.username, f"typo-{attempt}")
        assert portal_sign_in(client, parent.username).status_code == 302
        client.post(reverse("portal:logout"))

    assert portal_sign_in(client, "someone-else", "typo").status_code == 200


@override_settings(FEESYNC_ADDRESS_FAILURE_LIMIT=0)
def test_an_address_limit_of_zero_is_off(client, db):
    clerk = StaffFactory(username="clerk-z")
    for n in range(60):
        portal_sign_in(client, f"guess-{n}", "typo")

    assert admin_sign_in(client, clerk.username).status_code == 302


def test_a_forwarded_for_header_is_ignored_without_a_trusted_proxy(client, clerk):
    for attempt in range(10):
        admin_sign_in(
            client, clerk.username, f"wrong-{attempt}", HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}"
        )

    # Claiming yet another address in the header does not get round the pause.
    response = admin_sign_in(client, clerk.username, HTTP_X_FORWARDED_FOR=ELSEWHERE)
    assert response.status_code == 429


@override_settings(FEESYNC_TRUSTED_PROXY_COUNT=1)
def test_behind_one_trusted_proxy_each_client_is_throttled_on_its_own_address(client, clerk):
    proxy = "10.0.0.5"
    for attempt in range(10):
        admin_sign_in(
            client, clerk.username, f"wrong-{attempt}", address=proxy, HTTP_X_FORWARDED_FOR=HERE
        )
    locked = admin_sign_in(client, clerk.username, address=proxy, HTTP_X_FORWARDED_FOR=HERE)
    assert locked.status_code == 429

    other = admin_sign_in(client, clerk.username, address=proxy, HTTP_X_FORWARDED_FOR=ELSEWHERE)
    assert other.status_code == 302


# --- client_address, one request at a time --------------------------------------------------------


def _request(remote="10.0.0.5", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post("/admin/login/", **extra)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, None, "10.0.0.5"),
        (0, "198.51.100.20", "10.0.0.5"),  # no proxy configured: the header is the client's
        (1, None, "10.0.0.5"),  # the proxy did not say: its own address, not a guess
        (1, "198.51.100.20", "198.51.100.20"),
        (1, "6.6.6.6, 198.51.100.20", "198.51.100.20"),  # the left part was written by the client
        (2, "198.51.100.20, 10.1.1.1", "198.51.100.20"),
        (2, "198.51.100.20", "10.0.0.5"),  # shorter than the proxies said: not trusted
        (1, "not-an-address", "10.0.0.5"),
        (1, " 2001:db8::1 ", "2001:db8::1"),
    ],
)
def test_client_address(settings, proxies, forwarded, expected):
    settings.FEESYNC_TRUSTED_PROXY_COUNT = proxies

    assert client_address(_request(forwarded=forwarded)) == expected
