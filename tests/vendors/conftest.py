"""Fixtures for the vendor sandboxes: real PaySchools and Community Pass sandboxes on free
loopback ports.

One server per vendor per test session (starting is cheap, but sharing it also proves that
reset really empties the state); every test that asks for `payschools` or `communitypass`
gets it reset, with no fault injected. Nothing here touches FeeSync's database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from apps.vendors.kinds.base import AdapterConfig, FeeRecord
from apps.vendors.kinds.communitypass import sandbox as communitypass_sandbox
from apps.vendors.kinds.communitypass.adapter import CommunityPassAdapter
from apps.vendors.kinds.payschools.adapter import PaySchoolsAdapter
from apps.vendors.kinds.payschools.sandbox import DEFAULT_PASSWORD, DEFAULT_USERNAME, make_server
from apps.vendors.sandboxes.client import SandboxControl
from apps.vendors.sandboxes.server import SandboxServer

PAYSCHOOLS_CREDENTIALS = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
COMMUNITYPASS_CREDENTIALS = {"api_key": communitypass_sandbox.DEFAULT_API_KEY}
#: Test adapters back off in milliseconds on 5xx and dropped connections, so that retry
#: tests stay fast; a vendor's Retry-After is still honoured as sent.
COMMUNITYPASS_TEST_OPTIONS: dict[str, Any] = {"backoff_base": 0.01, "backoff_cap": 0.05}


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
        timeout: float = 15.0,  # generous: the machine may be busy
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


# --- Community Pass ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def communitypass_server() -> Iterator[SandboxServer]:
    server = communitypass_sandbox.make_server(0)
    server.start()
    yield server
    server.shutdown()


@pytest.fixture
def communitypass(communitypass_server: SandboxServer) -> Iterator[SandboxServer]:
    """The session's Community Pass sandbox: emptied, fault-free, request counters at 0."""
    control = SandboxControl(communitypass_server.url)
    control.reset()
    yield communitypass_server
    control.reset()  # never leave a fault mode behind for the next test


@pytest.fixture
def communitypass_control(communitypass: SandboxServer) -> SandboxControl:
    return SandboxControl(communitypass.url)


@pytest.fixture
def make_communitypass_adapter(
    communitypass: SandboxServer,
) -> Callable[..., CommunityPassAdapter]:
    """make(timeout=15.0, credentials=None, base_url=None, **options): an adapter on the
    sandbox. Options override COMMUNITYPASS_TEST_OPTIONS (e.g. max_retries=1)."""

    def make(
        *,
        timeout: float = 15.0,  # generous: the machine may be busy
        credentials: dict[str, str] | None = None,
        base_url: str | None = None,
        **options: Any,
    ) -> CommunityPassAdapter:
        config = AdapterConfig(
            base_url=base_url or communitypass.url,
            credentials=COMMUNITYPASS_CREDENTIALS if credentials is None else credentials,
            timeout=timeout,
            options={**COMMUNITYPASS_TEST_OPTIONS, **options},
        )
        return CommunityPassAdapter(config)

    return make


@pytest.fixture
def communitypass_adapter(
    make_communitypass_adapter: Callable[..., CommunityPassAdapter],
) -> CommunityPassAdapter:
    return make_communitypass_adapter()
