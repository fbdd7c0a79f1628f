"""How an amount of money enters FeeSync: one strict parser, and the form field built on it.

Every way in (the staff forms, the setup's money options, the ledger services themselves and
so the one door for money from outside) reads amounts through `parse_money`, so "12,50" means
the same refusal everywhere and never quietly becomes $1,250.00.

What is accepted, in the district's words: dollars and cents written plainly, `20`, `20.5`,
`20.50`, `.50`, optionally grouped in thousands the US way (`1,234.56`, `1,234`), optionally
after a `$` (clerks copy amounts off checks and receipts as they are printed: `$1,250.00`).
Everything else is refused with a message that names what was typed and says what is
accepted: exponents (`1e3`), a comma as the decimal mark (`12,50`), more than two decimal
places, NaN or Infinity, an empty box, a negative amount where none makes sense, and more
than a money column holds (9,999,999,999.99).

Adapters parse their vendor's money with their own strict parsers (they speak the vendor's
wire format, not a clerk's); the ledger checks what they hand over again through here.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from django import forms
from django.core.exceptions import ValidationError

#: The money columns are DecimalField(max_digits=12, decimal_places=2) (`models.MONEY`).
MAX_MONEY: Final = Decimal("9999999999.99")
CENT: Final = Decimal("0.01")
ACCEPTED: Final = "Enter dollars and cents like 20.00 or 1,234.56."

# ASCII digits only: `\d` would also take Arabic-Indic or full-width digits, which no clerk
# means to type and which Decimal would read silently.
_WHOLE = r"(?:[1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)"  # 1,234,567 (no leading 0 group) or 1234567
_AMOUNT = re.compile(rf"(?P<whole>{_WHOLE})?(?:\.(?P<cents>[0-9]+))?")
_COMMA_DECIMAL = re.compile(r"[0-9.]*,[0-9]{1,2}")  # 12,50 · 1.234,5
_EXPONENT = re.compile(r"[0-9.,]*[eE][+-]?[0-9]*")
_NOT_A_NUMBER = {"nan", "snan", "qnan", "inf", "infinity"}


class MoneyError(ValidationError):
    """An amount FeeSync refuses; the message names the value and says what is accepted."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_money")


def money_text(amount: Decimal) -> str:
    """The way FeeSync writes an amount (`1,234.56`); `parse_money` reads it back exactly."""
    return f"{amount:,.2f}"


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "…"


def parse_money(
    value: object,
    *,
    label: str = "Amount",
    allow_zero: bool = False,
    allow_negative: bool = False,
) -> Decimal:
    """Read an amount of money, to the cent, or raise `MoneyError` saying why not.

    `value` is what was typed (a string) or an amount already parsed (a `Decimal` or an
    `int`); a float is refused, since it has already lost the cents. `label` names the box
    in the message ("Amount", "Lunch balance threshold"). Zero is refused unless
    `allow_zero`, a negative amount unless `allow_negative`. Returns the amount quantized to
    two places, so `parse_money(money_text(x)) == x` for every amount it accepts."""
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError(
            f"{label} {value!r} must be given as a decimal, not a floating-point number "
            "(which cannot hold cents exactly)."
        )
    if value is None:
        raise MoneyError(f"{label} is empty. {ACCEPTED}")
    if isinstance(value, int):
        amount = Decimal(value)
        shown = str(value)
    elif isinstance(value, Decimal):
        shown = str(value)
        if not value.is_finite():
            raise MoneyError(f"{label} “{shown}” is not a number. {ACCEPTED}")
        amount = value
        # Range first: quantizing a huge Decimal would overflow the context's precision.
        if abs(amount) <= MAX_MONEY and amount != amount.quantize(CENT):
            raise MoneyError(
                f"{label} “{shown}” has more than two decimal places; money is kept to the cent."
            )
    elif isinstance(value, str):
        amount, shown = _parse_text(value, label)
    else:
        raise MoneyError(f"{label} “{_shown(value)}” is not a number. {ACCEPTED}")
    if amount < 0 and not allow_negative:
        raise MoneyError(f"{label} “{shown}” cannot be negative.")
    if amount == 0 and not allow_zero:
        raise MoneyError(f"{label} must be more than $0.00 (it was “{shown}”).")
    if abs(amount) > MAX_MONEY:
        raise MoneyError(
            f"{label} “{shown}” is more than FeeSync can hold (at most {money_text(MAX_MONEY)})."
        )
    # No InvalidOperation: the amount is at most 12 digits here.
    return amount.quantize(CENT) + 0  # "+ 0" turns -0.00 into 0.00


def _parse_text(value: str, label: str) -> tuple[Decimal, str]:
    text = value.strip()
    shown = _shown(text)
    if not text:
        raise MoneyError(f"{label} is empty. {ACCEPTED}")
    body = text
    negative = body.startswith("-")
    if negative:
        body = body[1:]
    body = body.removeprefix("$")
    if body.lower().lstrip("+-") in _NOT_A_NUMBER:
        raise MoneyError(f"{label} “{shown}” is not a number. {ACCEPTED}")
    match = _AMOUNT.fullmatch(body)
    if match is None or not (match["whole"] or match["cents"]):
        if _EXPONENT.fullmatch(body):
            reason = "uses exponent notation"
        elif _COMMA_DECIMAL.fullmatch(body):
            reason = (
                "uses a comma as the decimal mark (a comma may only group thousands, "
                "as in 1,234.56)"
            )
        elif "," in body:
            reason = "groups digits wrongly (commas go between groups of three, as in 1,234.56)"
        else:
            reason = "is not a number"
        raise MoneyError(f"{label} “{shown}” {reason}. {ACCEPTED}")
    cents = match["cents"]
    if cents is not None and len(cents) > 2:
        raise MoneyError(
            f"{label} “{shown}” has more than two decimal places; money is kept to the cent."
        )
    digits = (match["whole"] or "0").replace(",", "")
    if len(digits.lstrip("0")) > 10:  # checked before Decimal: no huge numbers are built
        raise MoneyError(
            f"{label} “{shown}” is more than FeeSync can hold (at most {money_text(MAX_MONEY)})."
        )
    try:
        amount = Decimal(f"{digits}.{cents or '0'}")
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        raise MoneyError(f"{label} “{shown}” is not an amount. {ACCEPTED}") from None
    return (-amount if negative else amount), shown


# --- the form field -------------------------------------------------------------------------


class MoneyInput(forms.TextInput):
    """A plain text box: the browser must not round or refuse what was typed, the server
    says what is wrong with it."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(
            {"inputmode": "decimal", "autocomplete": "off", "size": 12, **(attrs or {})}
        )


class MoneyField(forms.Field):
    """Dollars and cents, read by `parse_money`: every amount box on the staff site.

    More than zero and never negative unless the field says otherwise (`allow_zero` for a
    threshold, say). An empty box is None (the `required` check says so when it matters)."""

    widget = MoneyInput

    def __init__(
        self, *, allow_zero: bool = False, allow_negative: bool = False, **kwargs: Any
    ) -> None:
        # A model's DecimalField hands its own limits to its form field; ours are fixed.
        for name in ("max_digits", "decimal_places", "min_value", "max_value", "step_size"):
            kwargs.pop(name, None)
        kwargs.pop("localize", None)  # amounts are always read the one way above
        self.allow_zero = allow_zero
        self.allow_negative = allow_negative
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Decimal | None:
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return None
        return parse_money(
            value,
            label=str(self.label or "Amount"),
            allow_zero=self.allow_zero,
            allow_negative=self.allow_negative,
        )

    def prepare_value(self, value: Any) -> Any:
        # An amount shown back is shown to the cent ("5.00", not "5" or "5.0").
        if isinstance(value, Decimal) and value.is_finite():
            return f"{value:.2f}"
        return value
