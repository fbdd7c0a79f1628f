"""Issue 11 item 4: the connection step speaks of the integration's own vendor, and every
stored secret, the username included, is masked the same way."""

from __future__ import annotations

import pytest

from tests.admin_helpers import csrf_client
from tests.vendors.setup_pages import make_integration, section_text, setup_url

pytestmark = pytest.mark.django_db


def test_community_pass_connection_step_speaks_of_community_pass(district_admin):
    cp = make_integration("communitypass", credentials={"api_key": "abcdefgh1234"})
    text = section_text(csrf_client(district_admin).get(setup_url(cp)), "connection")
    assert "Community Pass' API" in text
    for other in ("WSDL", "SOAP", "PaySchools"):
        assert other not in text


def test_the_username_is_masked_like_the_password(district_admin):
    ps = make_integration(
        "payschools", credentials={"username": "district-user", "password": "secret-pw"}
    )
    text = section_text(csrf_client(district_admin).get(setup_url(ps)), "connection")
    assert "district-user" not in text and "district" not in text.split("Username")[1][:40]
    assert "Username Stored: ••••••••er." in text
    assert "Password Stored: ••••••••pw." in text
