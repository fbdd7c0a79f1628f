"""Staff sessions end after 30 minutes without a request and 10 hours after signing in;
parents keep Django's normal session. The clock is moved by writing the session's times in
the past, as if the staff member had signed in or last clicked that long ago."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse

from config.security.sessions import LAST_SEEN_AT, SIGNED_IN_AT, expired_because, now

from .conftest import PASSWORD

ADMIN_LOGIN = reverse("admin:login")
ADMIN = reverse("admin:index")
pytestmark = pytest.mark.django_db


def staff_sign_in(client, user):
    response = client.post(
        ADMIN_LOGIN, {"username": user.username, "password": PASSWORD, "next": ADMIN}
    )
    assert response.status_code == 302 and response.url == ADMIN
    return client


def move_back(client, **seconds_ago: float) -> None:
    """Pretend the session's sign-in / last request happened that many seconds ago."""
    session = client.session
    for key, ago in seconds_ago.items():
        session[key] = now() - ago
    session.save()


def test_sign_in_records_when_and_last_request(client, clerk):
    before = now()
    staff_sign_in(client, clerk)

    session = client.session
    assert before <= session[SIGNED_IN_AT] <= now()
    assert session[LAST_SEEN_AT] == session[SIGNED_IN_AT]


def test_staff_idle_for_more_than_30_minutes_is_signed_out_with_the_reason(client, clerk):
    staff_sign_in(client, clerk)
    move_back(client, **{LAST_SEEN_AT: 31 * 60, SIGNED_IN_AT: 40 * 60})

    response = client.get(reverse("admin:fees_fee_changelist"))

    assert response.status_code == 302
    assert response.url == f"{ADMIN_LOGIN}?next=%2Fadmin%2Ffees%2Ffee%2F"
    assert "_auth_user_id" not in client.session
    page = client.get(response.url).content.decode()
    assert "You were signed out after 30 minutes without activity" in page
    assert client.get(ADMIN).status_code == 302  # still signed out


def test_staff_active_within_30_minutes_stays_signed_in(client, clerk):
    staff_sign_in(client, clerk)
    move_back(client, **{LAST_SEEN_AT: 29 * 60, SIGNED_IN_AT: 5 * 3600})

    assert client.get(ADMIN).status_code == 200
    assert now() - client.session[LAST_SEEN_AT] < 5  # the click counts as activity


def test_staff_signed_in_for_more_than_10_hours_is_signed_out_even_while_active(
    client, district_admin
):
    staff_sign_in(client, district_admin)
    move_back(client, **{SIGNED_IN_AT: 10 * 3600 + 1, LAST_SEEN_AT: 10})

    response = client.get(ADMIN)

    assert response.status_code == 302 and response.url.startswith(ADMIN_LOGIN)
    assert "_auth_user_id" not in client.session
    page = client.get(response.url).content.decode()
    assert "You were signed out after 10 hours" in page


def test_signing_in_again_starts_the_hours_afresh(client, clerk):
    staff_sign_in(client, clerk)
    move_back(client, **{SIGNED_IN_AT: 10 * 3600 + 1})
    client.get(ADMIN)  # signed out

    staff_sign_in(client, clerk)

    assert client.get(ADMIN).status_code == 200


def test_a_post_after_the_idle_limit_is_refused_and_sent_to_sign_in(client, clerk):
    staff_sign_in(client, clerk)
    move_back(client, **{LAST_SEEN_AT: 45 * 60})

    response = client.post(reverse("admin:fees_fee_add"), {"description": "Field trip"})

    assert response.status_code == 302 and response.url == ADMIN_LOGIN


def test_a_parent_idle_for_hours_keeps_the_normal_session(client, make_parent):
    parent = make_parent()
    response = client.post(
        reverse("portal:login"), {"username": parent.username, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert SIGNED_IN_AT not in client.session
    move_back(client, **{SIGNED_IN_AT: 11 * 3600, LAST_SEEN_AT: 11 * 3600})

    assert client.get(reverse("portal:fees")).status_code == 200
    assert client.session["_auth_user_id"] == str(parent.pk)


def test_a_session_from_before_the_limits_starts_counting_at_its_next_request(client, clerk):
    client.force_login(clerk)
    session = client.session
    session.pop(SIGNED_IN_AT, None)
    session.pop(LAST_SEEN_AT, None)
    session.save()

    assert client.get(ADMIN).status_code == 200
    assert now() - client.session[SIGNED_IN_AT] < 5


def test_the_session_is_written_at_most_once_a_minute_for_activity(client, clerk):
    staff_sign_in(client, clerk)
    client.get(ADMIN)
    key = client.session.session_key
    seen = client.session[LAST_SEEN_AT]
    saved_until = Session.objects.get(pk=key).expire_date

    for _ in range(3):
        assert client.get(ADMIN).status_code == 200

    assert client.session[LAST_SEEN_AT] == seen
    assert Session.objects.get(pk=key).expire_date == saved_until  # not saved again

    move_back(client, **{LAST_SEEN_AT: 61})
    client.get(ADMIN)
    assert now() - client.session[LAST_SEEN_AT] < 5


# --- the rule on its own, with a fixed clock --------------------------------------------------

AT = 1_800_000_000.0


@pytest.mark.parametrize(
    ("signed_in_ago", "seen_ago", "reason"),
    [
        (0, 0, None),
        (30 * 60, 30 * 60, None),  # exactly the limit is still allowed
        (30 * 60 + 1, 30 * 60 + 1, "after 30 minutes without activity"),
        (10 * 3600, 0, None),
        (10 * 3600 + 1, 0, "after 10 hours"),
        (11 * 3600, 11 * 3600, "after 10 hours"),  # both: the longer one is the reason
    ],
)
def test_expired_because(signed_in_ago, seen_ago, reason):
    session = {SIGNED_IN_AT: AT - signed_in_ago, LAST_SEEN_AT: AT - seen_ago}

    said = expired_because(session, AT)

    assert (said is None) if reason is None else (reason in said)


def test_expired_because_follows_the_settings(settings):
    settings.FEESYNC_STAFF_IDLE_MINUTES = 5
    settings.FEESYNC_STAFF_SESSION_HOURS = 1

    fresh = {SIGNED_IN_AT: AT, LAST_SEEN_AT: AT}

    assert "after 5 minutes without" in expired_because(fresh, AT + 301)
    assert "after 1 hour." in expired_because(fresh, AT + 3601)


def test_signing_in_over_a_session_that_has_run_out_signs_in_afresh(client, clerk):
    staff_sign_in(client, clerk)
    move_back(client, **{LAST_SEEN_AT: 31 * 60})

    staff_sign_in(client, clerk)  # the sign-in page left open on the desk, used again

    assert client.get(ADMIN).status_code == 200
    assert now() - client.session[SIGNED_IN_AT] < 5
