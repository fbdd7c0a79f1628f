"""Schemathesis over the whole partner API, signed in with a valid application key, against
a live server: no 5xx, and every response matches the schema (status, content type, body).

Each operation's cases are drawn with Hypothesis from Schemathesis' strategy for it (its
pytest plugin does not run under this pytest yet)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.fees.selectors import ledger_report
from tests.factories import StudentFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.django_db(transaction=True)
def test_the_api_never_fails_and_keeps_to_its_schema(api_key: str, live_server: Any) -> None:
    StudentFactory(student_number="100")
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10  # part 1's 5, and part 2's refunds and misc receipts
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            response = case.call(
                base_url=live_server.url, headers={"Authorization": f"Api-Key {api_key}"}
            )
            calls.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        run()
    assert len(calls) >= 5 * 20
    assert ledger_report().ok
