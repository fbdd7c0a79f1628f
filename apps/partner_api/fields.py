"""Input fields of the Anthology contract: money by the project's strict parser, dates in
the contract's format (a date, optionally with the time 00:00:00)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.fees.money import MoneyError, parse_money

DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?P<sep>[-/])(?P<m>\d{2})(?P=sep)(?P<d>\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}:\d{2}(?:\.0+)?)(?:Z|[+-]00:00)?)?$"
)
DATE_HELP = (
    "A date, “YYYY-MM-DD”, optionally with the time “T00:00:00” (or “YYYY/MM/DD 00:00:00”); "
    "any other time is refused."
)


@extend_schema_field(
    {
        "oneOf": [{"type": "number"}, {"type": "string"}],
        "description": 'Dollars to the cent, e.g. 125.00 or "1,250.00".',
        "example": "125.00",
    }
)
class MoneyInputField(serializers.Field):
    def __init__(self, *, allow_zero: bool = False, **kwargs: Any) -> None:
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            return parse_money(data, label=self.field_name or "Amount", allow_zero=self.allow_zero)
        except MoneyError as exc:
            raise serializers.ValidationError(exc.message) from None

    def to_representation(self, value: Decimal) -> str:
        return f"{value:.2f}"


@extend_schema_field({"type": "string", "description": DATE_HELP, "example": "2026-09-15T00:00:00"})
class ContractDateField(serializers.Field):
    def to_internal_value(self, data: Any) -> date:
        name = self.field_name or "Date"
        if not isinstance(data, str):
            raise serializers.ValidationError(f"{name} must be a string: {DATE_HELP}")
        match = DATE_RE.match(data.strip())
        if match is None:
            raise serializers.ValidationError(f"{name} “{data}” is not a date: {DATE_HELP}")
        time = match["time"]
        if time is not None and time.split(".")[0] != "00:00:00":
            raise serializers.ValidationError(
                f"{name} “{data}” must have the time 00:00:00 (it is a date, not a moment)."
            )
        try:
            return date(int(match["y"]), int(match["m"]), int(match["d"]))
        except ValueError:
            raise serializers.ValidationError(
                f"{name} “{data}” is not a day of the calendar."
            ) from None

    def to_representation(self, value: date) -> str:
        return f"{value.isoformat()}T00:00:00"


@extend_schema_field(OpenApiTypes.STR)
class MoneyOutField(serializers.Field):
    def to_representation(self, value: Decimal) -> str:
        return f"{value:.2f}"
