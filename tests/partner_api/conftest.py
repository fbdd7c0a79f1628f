"""An enabled partner-API integration with an API user in both groups, its application
key, and API clients signed in either way (all through the real URLconf and auth classes)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.partner_api.services import api_key_issue, api_user_create
from apps.vendors.models import Integration
from tests.factories import StaffFactory, StudentFactory

PAYMENTS = "/api/student-accounting/ledger-payment-transactions"
PLANS = "/api/student-accounting/student-payment-plan"
BOTH = ("API - Student Accounting", "API - Student Payment Plan")


@pytest.fixture
def integration(db: Any) -> Integration:
    return Integration.objects.create(
        vendor_kind="partnerapi",
        slug="partner-t",
        name="Acme Pay",
        enabled=True,
        service_url="https://vendor.example.org/",
    )


@pytest.fixture
def api_user(integration: Integration) -> Any:
    user = StaffFactory(username="partner-t")
    return api_user_create(user=user, integration=integration, groups=BOTH)


@pytest.fixture
def api_key(api_user: Any) -> str:
    return api_key_issue(api_user=api_user, name="tests")[1]


@pytest.fixture
def api(api_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return client


@pytest.fixture
def basic_client() -> Callable[[str, str], APIClient]:
    def make(username: str, password: str = "pw-for-tests-1") -> APIClient:  # noqa: S107
        client = APIClient()
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
        return client

    return make


@pytest.fixture
def student(db: Any) -> Any:
    return StudentFactory()


def payment(student: Any, amount: Any = "125.00", vid: str = "V-1", **more: Any) -> dict[str, Any]:
    return {
        "StudentId": student.student_number,
        "TransactionAmount": amount,
        "TransactionDate": "2026-09-15T00:00:00",
        "PaymentType": "CreditCard",
        "Description": "Paid online",
        "VendorTransactionId": vid,
        **more,
    }
