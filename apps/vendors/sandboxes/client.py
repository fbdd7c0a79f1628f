"""A client for the control API (`control.py`), for tests, benchmarks and demos. Only this
module of the package needs `requests`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import requests

from apps.vendors.sandboxes.values import json_default


class SandboxControl:
    """Drive a sandbox's control API over HTTP, as tests, benchmarks and demos do.

    Every method raises `SandboxControlError` (with the sandbox's message) on a 4xx/5xx.
    """

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, name: str, payload: dict[str, Any] | None = None) -> Any:
        address = f"{self.url}/_sandbox/{name}"
        if payload is None:
            response = self.session.get(address, timeout=self.timeout)
        else:
            body = json.dumps(payload, default=json_default)
            response = self.session.post(
                address,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
        data = response.json()
        if response.status_code >= 400:
            raise SandboxControlError(data.get("error", response.text), response.status_code)
        return data

    def state(self) -> dict[str, Any]:
        return self.call("state")

    def pay(
        self,
        fee_ref: str,
        amount: Decimal | str,
        *,
        closed: bool = False,
        hidden: bool = False,
        allow_over: bool = False,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "fee_ref": fee_ref,
            "amount": str(amount),
            "closed": closed,
            "hidden": hidden,
        }
        if allow_over:  # only when asked: a sandbox of an older contract never sees it
            payload["allow_over"] = True
        return self.call("pay", payload)

    def pay_many(self, payments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.call("pay", {"payments": list(payments)})["results"]

    def refund(self, payment_id: str, amount: Decimal | str) -> dict[str, Any]:
        return self.call("refund", {"payment_id": payment_id, "amount": str(amount)})

    def void(self, payment_id: str) -> dict[str, Any]:
        return self.call("void", {"payment_id": payment_id})

    def waive(self, fee_ref: str, amount: Decimal | str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"fee_ref": fee_ref}
        if amount is not None:
            payload["amount"] = str(amount)
        return self.call("waive", payload)

    def foreign_fee(self, student_id: str, amount: Decimal | str, **extra: Any) -> dict[str, Any]:
        return self.call("foreign_fee", {"student_id": student_id, "amount": str(amount), **extra})

    def lunch(self, student_id: str, balance: Decimal | str) -> dict[str, Any]:
        return self.call("lunch", {"student_id": student_id, "balance": str(balance)})

    def delete_fee(self, fee_ref: str) -> dict[str, Any]:
        return self.call("delete_fee", {"fee_ref": fee_ref})

    def hide_payments(
        self, payment_ids: Sequence[str] | None = None, *, hidden: bool = True
    ) -> int:
        payload: dict[str, Any] = {"hidden": hidden}
        if payment_ids is not None:
            payload["payment_ids"] = list(payment_ids)
        return int(self.call("hide_payments", payload)["updated"])

    def seed_fees(self, fees: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.call("seed_fees", {"fees": list(fees)})["results"]

    def receipts(self) -> dict[str, float]:
        """fee_ref -> epoch seconds of the last accepted upsert (see SandboxState.receipts)."""
        return {k: float(v) for k, v in self.call("receipts")["receipts"].items()}

    def faults(self, mode: str = "ok", **options: Any) -> dict[str, Any]:
        return self.call("faults", {"mode": mode, **options})

    def reset(self) -> None:
        self.call("reset", {})

    def requests(self) -> dict[str, Any]:
        """Vendor requests the sandbox received: `total`, `faulted`, `by_endpoint`."""
        return self.call("requests")

    def clear_requests(self) -> None:
        self.call("requests", {})


class SandboxControlError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(f"{status}: {message}")
        self.message = message
        self.status = status
