"""The verified-credentials cache (FEESYNC_API_AUTH_CACHE_SECONDS): a partner's second
call costs no authentication or permission query, and a change made in the admin (a key
revoked, a permission removed, the integration switched off) counts at once."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.fees.models import LedgerEntry

from .conftest import PAYMENTS, payment

AUTH_TABLES = ("partner_api_partnerapikey", "auth_permission", "auth_user")


@pytest.fixture(autouse=True)
def cache_on(settings: Any) -> Any:
    from apps.partner_api.auth import forget_verified

    settings.FEESYNC_API_AUTH_CACHE_SECONDS = 30
    forget_verified()
    yield
    forget_verified()


def _auth_queries(client: Any, body: dict[str, Any], key: str) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    sql = [q["sql"] for q in ctx.captured_queries]
    return response.status_code, [s for s in sql if any(t in s for t in AUTH_TABLES)]


@pytest.mark.parametrize("way", ["key", "basic"])
def test_second_call_needs_no_auth_query(way, api, basic_client, api_user, student):
    client = api if way == "key" else basic_client("partner-t")
    status, first = _auth_queries(client, payment(student, "5.00", vid="C-1"), "c-1")
    assert status == 201 and first
    status, second = _auth_queries(client, payment(student, "5.00", vid="C-2"), "c-2")
    assert status == 201 and second == []
    # The replay of a retry is the idempotency row and the call log, nothing for auth.
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(
            PAYMENTS, payment(student, "5.00", vid="C-2"), format="json", HTTP_IDEMPOTENCY_KEY="c-2"
        )
    assert response.headers["Idempotent-Replayed"] == "true"
    # (the test's own transaction turns BEGIN/COMMIT into savepoints: not counted)
    sql = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    # The answered key's row, read before the body is parsed, and the call log.
    assert len(sql) == 2, sql
    assert LedgerEntry.objects.filter(student=student).count() == 2


def test_wrong_password_is_never_cached(basic_client, api_user, student):
    assert (
        basic_client("partner-t").post(PAYMENTS, payment(student), format="json").status_code == 201
    )
    wrong = basic_client("partner-t", "wrong-pw")
    assert wrong.post(PAYMENTS, payment(student, vid="C-9"), format="json").status_code == 401


def test_revoking_the_key_counts_at_once(api, api_user, student):
    assert api.post(PAYMENTS, payment(student, vid="R-1"), format="json").status_code == 201
    key = api_user.keys.get()
    key.revoked = True
    key.save()  # as the admin's revoke does
    assert api.post(PAYMENTS, payment(student, vid="R-2"), format="json").status_code == 401


def test_removing_the_group_counts_at_once(api, api_user, student):
    assert api.post(PAYMENTS, payment(student, vid="G-1"), format="json").status_code == 201
    api_user.user.groups.remove(Group.objects.get(name="API - Student Accounting"))
    response = api.post(PAYMENTS, payment(student, vid="G-2"), format="json")
    assert response.status_code == 403
    assert response.json()["permission"] == "StudentAccounting.LedgerPaymentTransactions.Create"


def test_switching_the_integration_off_counts_at_once(api, integration, student):
    assert api.post(PAYMENTS, payment(student, vid="I-1"), format="json").status_code == 201
    integration.enabled = False
    integration.save()
    response = api.post(PAYMENTS, payment(student, vid="I-2"), format="json")
    assert response.status_code == 403 and "switched off" in response.json()["detail"]
