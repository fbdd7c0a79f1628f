"""How values look in a sandbox's state and on its wire: money as two-decimal strings
computed with `Decimal` (never floats), times as ISO 8601 UTC with a "Z".
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def parse_money(value: object, *, what: str = "amount", allow_negative: bool = False) -> Decimal:
    """Parse an amount into a two-place `Decimal`. Rejects floats (they are not money),
    more than two decimal places, non-finite values and (unless allowed) negatives."""
    if isinstance(value, bool | float):
        raise ValueError(f'{what} must be a decimal string such as "12.50", not {value!r}')
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{what} {value!r} is not a number")
    if amount != amount.quantize(CENT):
        raise ValueError(f"{what} {value} has more than two decimal places")
    if amount < 0 and not allow_negative:
        raise ValueError(f"{what} {value} is negative")
    return amount.quantize(CENT)


def money_str(amount: Decimal) -> str:
    """Two-decimal string, the only form money takes in state and on the wire."""
    return str(amount.quantize(CENT))


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_default(value: object) -> object:
    """`json.dumps(default=...)` for sandbox answers: a `Decimal` goes out as money."""
    if isinstance(value, Decimal):
        return money_str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
