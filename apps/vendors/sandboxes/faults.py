"""The faults a sandbox can inject into its vendor endpoints (`POST /_sandbox/faults`):
the modes and options, as the control API lists them, and `FaultConfig`, the setting the
server applies to each vendor request.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from apps.vendors.sandboxes.fields import ControlError, bool_field

#: Fault modes accepted by `POST /_sandbox/faults`, with what each does to the vendor
#: endpoints. The control API itself is never affected.
FAULT_MODES: dict[str, str] = {
    "ok": "answer normally",
    "down": "every vendor endpoint (service description included) answers 503 with Retry-After",
    "drop": "every vendor endpoint closes the connection without answering",
    "drop_mid_answer": (
        "operations do their work (a push is stored, a page of payments is read) and the"
        " connection is closed part-way through the answer (see cut_at); the description"
        " is served"
    ),
    "throttle": "every vendor endpoint answers 429 Too Many Requests with Retry-After",
    "slow": "every vendor endpoint waits delay_ms before answering (and then does the work)",
    "error": "operations answer HTTP 500 with an HTML error page; the description is served",
    "no_wsdl": "the service description (WSDL / API document) answers 404; operations work",
    "malformed": "operations answer HTTP 200 with a truncated, unparseable body",
    "fault": "operations answer with a protocol-level error (a SOAP Fault, a JSON error)",
}

#: Options of `POST /_sandbox/faults` besides `mode`, valid with any mode.
FAULT_OPTIONS: dict[str, str] = {
    "delay_ms": "slow: how long to wait before answering (default 2000)",
    "retry_after": "down, throttle: the Retry-After header, in seconds (default 30)",
    "duplicate_payments": "every payment of a payments page is sent twice",
    "count": "only the next N vendor requests get the fault; then the mode is ok again",
    "every": "only every Nth vendor request gets the fault (N >= 2); the others are answered",
    "status": "fault: the HTTP status of the protocol-level error (400-599; vendor default)",
    "throttle_count": "shorthand for a 429 storm: mode throttle, count N, retry_after 1",
    "cut_at": (
        "drop_mid_answer: where the answer stops, 'body' (status line, headers and half the"
        " body; default) or 'headers' (status line and headers, no body)"
    ),
}

#: Where a "drop_mid_answer" answer is cut off.
CUT_POINTS = ("body", "headers")


@dataclass
class FaultConfig:
    """The injected fault (see FAULT_MODES and FAULT_OPTIONS).

    `count` > 0 limits the fault to the next `count` vendor requests (the server counts
    down and returns to "ok"), so a test can say "the next 3 requests get 429, then it
    recovers". `every` >= 2 faults only every Nth vendor request. `status` is the HTTP
    status of a "fault"-mode error (0: the vendor's usual one). `cut_at` is where a
    "drop_mid_answer" answer stops (CUT_POINTS).
    """

    mode: str = "ok"
    delay_ms: int = 2000
    duplicate_payments: bool = False
    retry_after: int = 30
    count: int = 0
    every: int = 0
    status: int = 0
    cut_at: str = "body"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        mode = str(data.get("mode", "ok"))
        storm = data.get("throttle_count")
        if storm is not None:
            if "mode" in data and mode != "throttle":
                raise ControlError("throttle_count goes with mode throttle (or no mode).")
            mode = "throttle"
        if mode not in FAULT_MODES:
            raise ControlError(f"Unknown fault mode {mode!r}; use one of {', '.join(FAULT_MODES)}.")
        numbers: dict[str, int] = {}
        defaults = {
            "delay_ms": 2000,
            "retry_after": 1 if storm is not None else 30,
            "count": storm if storm is not None else 0,
            "every": 0,
            "status": 0,
        }
        for key, default in defaults.items():
            value = data.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
                raise ControlError(f"{key} must be a whole number.")
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ControlError(f"{key} must be a whole number.") from None
            if number < 0:
                raise ControlError(f"{key} may not be negative.")
            numbers[key] = number
        if numbers["every"] == 1:
            numbers["every"] = 0  # every request: the same as no `every`
        if numbers["status"] and not 400 <= numbers["status"] <= 599:
            raise ControlError("status must be an HTTP error status (400-599).")
        cut_at = str(data.get("cut_at", "body"))
        if cut_at not in CUT_POINTS:
            raise ControlError(f"cut_at must be one of {', '.join(CUT_POINTS)}.")
        return cls(
            mode,
            numbers["delay_ms"],
            bool_field(data, "duplicate_payments"),
            numbers["retry_after"],
            numbers["count"],
            numbers["every"],
            numbers["status"],
            cut_at,
        )
