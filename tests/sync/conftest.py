"""Real parts for the sync engine's scenario tests: the vendor sandboxes over HTTP on
loopback and integrations wired to them, beside the suite's real Celery worker
(`live_worker`, tests/workers.py) on the session's broker (Redis, or each broker in turn for
the tests marked `all_brokers`: tests/brokers.py). Tests with the worker use committed data
(`transactional_db`) because the worker is another process."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from apps.vendors.models import Integration
from apps.vendors.registry import load_sandbox

# The worker's helpers, for the tests here (`from .conftest import wait_for`).
from tests.workers import Worker as Worker
from tests.workers import database_url_for_workers as database_url_for_workers
from tests.workers import wait_for as wait_for

VENDORS = ["payschools", "communitypass"]
#: Where each vendor's API lives under its sandbox's root (the integration's service URL).
SERVICE_PATHS = {"payschools": "/soap", "communitypass": "/v1"}


class Sandbox:
    """A running vendor sandbox and its `/_sandbox/` control API."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.server = load_sandbox(kind).make_server(0)
        self.server.start()
        self.url: str = self.server.url

    @property
    def service_url(self) -> str:
        return self.url + SERVICE_PATHS[self.kind]

    def control(self, action: str, **payload: Any) -> Any:
        resp = requests.post(f"{self.url}/_sandbox/{action}", json=payload, timeout=60)
        assert resp.status_code < 300, (action, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def state(self) -> dict[str, Any]:
        resp = requests.get(f"{self.url}/_sandbox/state", timeout=60)
        resp.raise_for_status()
        return resp.json()

    def fees(self) -> dict[str, dict[str, Any]]:
        """Fees FeeSync sent, by reference (asserting none is there twice)."""
        fees = [f for f in self.state()["fees"] if not f.get("foreign")]
        refs = [f["fee_ref"] for f in fees]
        assert len(refs) == len(set(refs)), f"duplicate fees at the vendor: {refs}"
        return {f["fee_ref"]: f for f in fees}

    def faults(self, mode: str, **extra: Any) -> None:
        self.control("faults", mode=mode, **extra)

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(params=VENDORS)
def sandbox(request) -> Iterator[Sandbox]:
    box = Sandbox(request.param)
    yield box
    box.stop()


def integration_for(box: Sandbox, **overrides: Any) -> Integration:
    """An enabled integration wired to `box`, everything in scope from July 2026 on
    (`categories=[...]` narrows it)."""
    fields: dict[str, Any] = {
        "vendor_kind": box.kind,
        "slug": f"{box.kind}-test",
        "name": "Test",
        "enabled": True,
        "service_url": box.service_url,
        # Generous: on a busy machine the sandbox may take seconds to answer. A test about a
        # vendor that does not answer in time sets a short timeout of its own.
        "timeout_seconds": 15,
        "import_after": dt.date(2026, 7, 1),
        "lunch_balance_threshold": Decimal("5.00"),
    }
    fields.update(overrides)
    categories = fields.pop("categories", [])
    integration = Integration(**fields)
    integration.credentials = (
        {"username": "feesync", "password": "sandbox-secret"}
        if box.kind == "payschools"
        else {"api_key": "sandbox-key"}
    )
    integration.save()
    integration.categories.set(categories)
    return integration


@pytest.fixture
def make_integration(sandbox: Sandbox) -> Callable[..., Integration]:
    def make(**overrides: Any) -> Integration:
        return integration_for(sandbox, **overrides)

    return make


@pytest.fixture
def both_sandboxes() -> Iterator[dict[str, Sandbox]]:
    """Every vendor's sandbox at once, by kind (for what happens between vendors)."""
    boxes = {kind: Sandbox(kind) for kind in VENDORS}
    yield boxes
    for box in boxes.values():
        box.stop()
