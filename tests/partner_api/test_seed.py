"""seed_demo's partner: `partner-demo`, the API user `partner` in both groups, and the
application key `make run` prints, which signs in."""

from __future__ import annotations

import base64
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.partner_api.models import ApiUser
from apps.students.models import Student

from .conftest import PAYMENTS, PLANS, payment


@pytest.mark.django_db
def test_seed_demo_wires_the_demo_partner_and_prints_its_key():
    out = StringIO()
    call_command("seed_demo", students=6, stdout=out)
    call_command("seed_demo", students=6, stdout=StringIO())  # idempotent
    assert settings.PARTNER_DEMO_KEY in out.getvalue()
    api_user = ApiUser.objects.get(user__username="partner")
    assert api_user.integration.slug == "partner-demo"
    assert set(api_user.user.groups.values_list("name", flat=True)) == {
        "API - Student Accounting",
        "API - Student Payment Plan",
        "API - Student Accounts",  # issue 14: the commands and OData
    }
    assert api_user.keys.count() == 1
    student = Student.objects.first()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {settings.PARTNER_DEMO_KEY}")
    assert client.post(PAYMENTS, payment(student), format="json").status_code == 201
    basic = APIClient()
    token = base64.b64encode(f"partner:{settings.DEMO_PASSWORD}".encode()).decode()
    basic.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    plan = {
        "StudentId": student.student_number,
        "ScheduledPayments": [{"Amount": "10.00", "ExpectedDate": "2026-10-01"}],
    }
    assert basic.post(PLANS, plan, format="json").status_code == 201
