"""Fixtures for the vendor sandboxes: a real PaySchools sandbox on a free loopback port.

One server per test session (starting is cheap, but sharing it also proves that reset
really empties the state); every test that asks for `payschools` gets it reset, with no
fault injected. Nothing here touches FeeSync's database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from apps.vendors.adapters.base import AdapterConfig, FeeRecord
from apps.vendors.adapters.payschools import PaySchoolsAdapter
from apps.vendors.sandboxes.common import SandboxControl, SandboxServer
from apps.vendors.sandboxes.payschools import DEFAULT_PASSWORD, DEFAULT_USERNAME, make_server

PAYSCHOOLS_CREDENTIALS = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}


@pytest.fixture(scope="session")
def payschools_server() -> Iterator[SandboxServer]:
    server = make_server(0)  # port 0: any free port; server.url says which
    server.start()
    yield server
    server.shutdown()


@pytest.fixture
def payschools(payschools_server: SandboxServer) -> Iterator[SandboxServer]:
    """The session's PaySchools sandbox, emptied and fault-free for this test."""
    control = SandboxControl(payschools_server.url)
    control.reset()
    yield payschools_server
    control.reset()  # never leave a fault mode behind for the next test


@pytest.fixture
def payschools_control(payschools: SandboxServer) -> SandboxControl:
    return SandboxControl(payschools.url)


@pytest.fixture
def make_payschools_adapter(payschools: SandboxServer) -> Callable[..., PaySchoolsAdapter]:
    def make(
        *,
        timeout: float = 5.0,
        credentials: dict[str, str] | None = None,
        base_url: str | None = None,
        **options: Any,
    ) -> PaySchoolsAdapter:
        config = AdapterConfig(
            base_url=base_url or payschools.url,
            credentials=PAYSCHOOLS_CREDENTIALS if credentials is None else credentials,
            timeout=timeout,
            options=options,
        )
        return PaySchoolsAdapter(config)

    return make


@pytest.fixture
def payschools_adapter(
    make_payschools_adapter: Callable[..., PaySchoolsAdapter],
) -> PaySchoolsAdapter:
    return make_payschools_adapter()


@pytest.fixture
def fee_record() -> Callable[..., FeeRecord]:
    """Build a FeeRecord with sensible defaults: fee_record("F1", amount="25.00")."""

    def make(fee_ref: str = "FEE-1", **overrides: Any) -> FeeRecord:
        amount = Decimal(str(overrides.pop("amount", "25.00")))
        values: dict[str, Any] = {
            "fee_ref": fee_ref,
            "version": 1,
            "student_id": "100001",
            "student_name": "Ada Lovelace",
            "school_code": "HS1",
            "category_code": "BUS",
            "merchant_id": "MID-1",
            "description": "Bus pass",
            "amount": amount,
            "amount_due": amount,
            "fee_date": dt.date(2025, 9, 1),
            "due_date": dt.date(2025, 10, 1),
            "active": True,
        }
        values.update(overrides)
        if isinstance(values["amount_due"], str):
            values["amount_due"] = Decimal(values["amount_due"])
        return FeeRecord(**values)

    return make
