"""`field__any=values`: membership in a list sent as one array parameter.

Django's `__in` turns a list into one placeholder per value, and prepares and resolves each
value on its own: for the thousand-id lists of the nightly pull's hot path (a page of
vendor payments) that cost more, in Python and in PostgreSQL's parser, than the queries
themselves. On PostgreSQL `__any` is `column = ANY(%s)` with the whole list as one array;
elsewhere (SQLite, the embedded default of `make run`) it is the same `IN (...)` as `__in`.
Use it where a list can be long and its values are plain (ids, references); `__in` stays
the choice for short lists and subqueries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models import Field, ForeignObject, Lookup


class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self) -> list[Any]:
        if not isinstance(self.rhs, Iterable) or isinstance(self.rhs, str | bytes):
            raise TypeError("__any takes a list of values, not a single value.")
        prep = self.lhs.output_field.get_prep_value
        plain = _PLAIN_PYTHON.get(self.lhs.output_field.get_internal_type())
        # Ids and references are already what the column holds: no per-value preparation.
        return [
            v if type(v) is plain else prep(v) for v in dict.fromkeys(self.rhs) if v is not None
        ]

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values: list[Any] = self.rhs
        if not values:
            raise EmptyResultSet  # matches nothing, as `__in=[]` does
        if connection.vendor == "postgresql":
            array_type = self.lhs.output_field.db_type(connection)
            if array_type and array_type.split("(")[0] in _PLAIN_TYPES:
                cast = _PLAIN_TYPES[array_type.split("(")[0]]
                return f"{lhs} = ANY(%s::{cast}[])", (*lhs_params, values)
            return f"{lhs} = ANY(%s)", (*lhs_params, values)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", (*lhs_params, *values)


# Relations keep their own lookups (Django's Related* classes), so register there too.
Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)

_PLAIN_PYTHON: dict[str, type] = {
    "AutoField": int,
    "BigAutoField": int,
    "BigIntegerField": int,
    "IntegerField": int,
    "PositiveIntegerField": int,
    "ForeignKey": int,
    "CharField": str,
    "TextField": str,
}

# The column types whose array is named without a length (varchar(40)[] is varchar[]).
_PLAIN_TYPES = {
    "bigint": "bigint",
    "integer": "integer",
    "smallint": "smallint",
    "varchar": "varchar",
    "text": "text",
}
