"""The JSON control API under `/_sandbox/` (DESIGN.md, "Vendor contracts and sandboxes"):
what tests, benchmarks and demos use to act as a parent or as the vendor's staff, to
inject faults and to read the vendor's state. The names of its calls, their fields and
their answers are a contract relied on from outside; `client.SandboxControl` speaks it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from apps.vendors.sandboxes.faults import FAULT_MODES, FAULT_OPTIONS, FaultConfig
from apps.vendors.sandboxes.fields import (
    ControlError,
    money_field,
    optional_str,
    required_str,
)
from apps.vendors.sandboxes.messages import Request, Response
from apps.vendors.sandboxes.state import FeeInput, SandboxState
from apps.vendors.sandboxes.values import money_str


class _Vendor(Protocol):
    """A `VendorProtocol`, as far as the control API reads it."""

    @property
    def name(self) -> str: ...


class ControlledServer(Protocol):
    """What the control API needs of the sandbox it controls (a `SandboxServer`). Spelled
    out here so that this module does not import `server.py`, which builds the API."""

    @property
    def state(self) -> SandboxState: ...

    @property
    def protocol(self) -> _Vendor: ...

    @property
    def faults(self) -> FaultConfig: ...

    def set_faults(self, faults: FaultConfig) -> None: ...

    def request_counts(self) -> dict[str, Any]: ...

    def clear_request_counts(self) -> None: ...


def _fee_input(data: dict[str, Any]) -> FeeInput:
    """A fee for `seed_fees`, with the same names as FeeSync's FeeRecord."""
    try:
        return FeeInput(
            fee_ref=required_str(data, "fee_ref"),
            version=int(data.get("version", 1)),
            student_id=required_str(data, "student_id"),
            student_name=str(data.get("student_name", "")),
            school_code=str(data.get("school_code", "")),
            category_code=str(data.get("category_code", "")),
            merchant_id=str(data.get("merchant_id", "")),
            description=str(data.get("description", "")),
            amount=money_field(data, "amount"),
            amount_due=money_field(data, "amount_due" if "amount_due" in data else "amount"),
            fee_date=str(data.get("fee_date") or datetime.now(UTC).date().isoformat()),
            due_date=optional_str(data, "due_date"),
            active=bool(data.get("active", True)),
        )
    except (TypeError, ValueError) as exc:
        raise ControlError(f"Bad fee {data.get('fee_ref')!r}: {exc}") from None


class ControlAPI:
    """The JSON control API (DESIGN.md, "Vendor contracts and sandboxes"), plus extras for
    validation tests and benchmarks. Unauthenticated: it only ever listens on loopback."""

    def __init__(self, server: ControlledServer) -> None:
        self.server = server
        self.state = server.state
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any], Request], object]] = {
            ("GET", ""): self.index,
            ("GET", "health"): self.health,
            ("GET", "state"): self.get_state,
            ("GET", "faults"): self.get_faults,
            ("POST", "faults"): self.post_faults,
            ("POST", "pay"): self.pay,
            ("POST", "refund"): self.refund,
            ("POST", "void"): self.void,
            ("POST", "waive"): self.waive,
            ("POST", "foreign_fee"): self.foreign_fee,
            ("POST", "lunch"): self.lunch,
            ("POST", "delete_fee"): self.delete_fee,
            ("POST", "hide_payments"): self.hide_payments,
            ("POST", "seed_fees"): self.seed_fees,
            ("POST", "reset"): self.reset,
            ("GET", "requests"): self.get_requests,
            ("GET", "receipts"): self.get_receipts,
            ("POST", "requests"): self.clear_requests,
        }

    def handle(self, request: Request) -> Response:
        name = request.path.removeprefix("/_sandbox").strip("/")
        route = self.routes.get((request.method, name))
        if route is None:
            if any(n == name for _, n in self.routes):
                return Response.json({"error": f"{request.method} is not allowed here."}, 405)
            return Response.json({"error": f"No control endpoint /_sandbox/{name}."}, 404)
        try:
            data = json.loads(request.body, parse_float=Decimal) if request.body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return Response.json({"error": "The body is not valid JSON."}, 400)
        if not isinstance(data, dict):
            return Response.json({"error": "The body must be a JSON object."}, 400)
        try:
            return Response.json(route(data, request))
        except ControlError as exc:
            return Response.json({"error": exc.message}, exc.status)

    # --- endpoints ----------------------------------------------------------------------
    def index(self, data: dict[str, Any], request: Request) -> object:
        return {
            "vendor": self.server.protocol.name,
            "endpoints": sorted(f"{m} /_sandbox/{n}".rstrip("/") for m, n in self.routes),
            "fault_modes": FAULT_MODES,
            "fault_options": FAULT_OPTIONS,
        }

    def health(self, data: dict[str, Any], request: Request) -> object:
        return {"ok": True, "vendor": self.server.protocol.name, "state": self.state.path}

    def get_state(self, data: dict[str, Any], request: Request) -> object:
        student = request.query.get("student_id", [None])[0]
        return self.state.snapshot(student)

    def get_faults(self, data: dict[str, Any], request: Request) -> object:
        return asdict(self.server.faults)

    def post_faults(self, data: dict[str, Any], request: Request) -> object:
        faults = FaultConfig.from_json(data)
        self.server.set_faults(faults)
        return asdict(faults)

    def pay(self, data: dict[str, Any], request: Request) -> object:
        if "payments" in data:
            specs = data["payments"]
            if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
                raise ControlError("payments must be a list of objects.")
            return {"results": self.state.pay(specs)}
        return self.state.pay([data])[0]

    def refund(self, data: dict[str, Any], request: Request) -> object:
        return self.state.refund(required_str(data, "payment_id"), money_field(data, "amount"))

    def void(self, data: dict[str, Any], request: Request) -> object:
        return self.state.void(required_str(data, "payment_id"))

    def waive(self, data: dict[str, Any], request: Request) -> object:
        amount = money_field(data, "amount") if data.get("amount") is not None else None
        return self.state.waive(required_str(data, "fee_ref"), amount)

    def foreign_fee(self, data: dict[str, Any], request: Request) -> object:
        return self.state.foreign_fee(
            required_str(data, "student_id"),
            money_field(data, "amount"),
            fee_ref=optional_str(data, "fee_ref"),
            description=str(data.get("description") or "Fee entered at the vendor"),
            student_name=str(data.get("student_name") or ""),
        )

    def lunch(self, data: dict[str, Any], request: Request) -> object:
        student_id = required_str(data, "student_id")
        balance = money_field(data, "balance", allow_negative=True)
        self.state.set_lunch(student_id, balance)
        return {"student_id": student_id, "balance": money_str(balance)}

    def delete_fee(self, data: dict[str, Any], request: Request) -> object:
        fee_ref = required_str(data, "fee_ref")
        self.state.delete_fee(fee_ref)
        return {"deleted": fee_ref}

    def hide_payments(self, data: dict[str, Any], request: Request) -> object:
        ids = data.get("payment_ids")
        if ids is not None and (
            not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)
        ):
            raise ControlError("payment_ids must be a list of strings.")
        hidden = data.get("hidden", True)
        if not isinstance(hidden, bool):
            raise ControlError("hidden must be true or false.")
        return {"updated": self.state.hide_payments(ids, hidden), "hidden": hidden}

    def seed_fees(self, data: dict[str, Any], request: Request) -> object:
        fees = data.get("fees")
        if not isinstance(fees, list) or not all(isinstance(f, dict) for f in fees):
            raise ControlError("fees must be a list of objects.")
        outcomes = self.state.upsert_fees([_fee_input(f) for f in fees])
        return {"results": [asdict(o) for o in outcomes]}

    def reset(self, data: dict[str, Any], request: Request) -> object:
        self.state.reset()
        self.server.set_faults(FaultConfig())
        self.server.clear_request_counts()
        return {"reset": True}

    def get_receipts(self, data: dict[str, Any], request: Request) -> object:
        return {"receipts": self.state.receipts()}

    def get_requests(self, data: dict[str, Any], request: Request) -> object:
        return self.server.request_counts()

    def clear_requests(self, data: dict[str, Any], request: Request) -> object:
        self.server.clear_request_counts()
        return self.server.request_counts()
