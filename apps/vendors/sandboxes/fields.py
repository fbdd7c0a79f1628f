"""Reading the fields of a control-API request (`POST /_sandbox/...`, a JSON object), and
the error a refused request raises. Shared by the control API, the state's control
operations (`SandboxState.pay` reads each payment it is given) and the fault settings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.vendors.sandboxes.values import parse_money


class ControlError(Exception):
    """A control-API request the sandbox refuses; becomes a JSON error with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ControlError(f"{key} is required.")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ControlError(f"{key} must be a string.")
    return str(value)


def optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def money_field(data: dict[str, Any], key: str, *, allow_negative: bool = False) -> Decimal:
    if data.get(key) is None:
        raise ControlError(f"{key} is required.")
    try:
        return parse_money(data[key], what=key, allow_negative=allow_negative)
    except ValueError as exc:
        raise ControlError(str(exc)) from None


def bool_field(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ControlError(f"{key} must be true or false.")
    return value
