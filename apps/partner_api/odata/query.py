"""An OData request's query options turned into one `Query`: `$filter` (`filters`),
`$select`, `$orderby`, `$top`, `$skip`, `$expand` and `$count`, each checked against the
entity set's declaration so a wrong name or value is a 400 naming the option."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import F, Q

from .entities import EntitySet, Nav, Prop, target_of
from .filters import parse_filter
from .names import ODataError, resolve

__all__ = ["ODataError", "Query", "key_value", "max_page_size", "parse"]

OPTIONS = {"$filter", "$select", "$orderby", "$top", "$skip", "$expand", "$count", "$format"}


def max_page_size() -> int:
    return int(getattr(settings, "FEESYNC_ODATA_MAX_PAGE_SIZE", 1000))


# --- the other options ----------------------------------------------------------------------

_PATH = r"[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*"
_ORDER_ITEM = re.compile(rf"^\s*({_PATH})(?:\s+(asc|desc))?\s*$")
_INTEGER = re.compile(r"^\d{1,9}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EXPAND_ITEM = re.compile(r"^\s*([A-Za-z_]\w*|\*)\s*(?:\((.*)\))?\s*$", re.S)


def _split(text: str) -> list[str]:
    """Comma-separated items, commas inside parentheses kept."""
    items, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return items


def _select(entity: type[EntitySet], text: str, option: str = "$select") -> list[Prop]:
    chosen: list[Prop] = []
    for raw in _split(text):
        name = raw.strip()
        if name == "*":
            return list(entity.properties)
        if entity.nav(name) is not None:
            continue  # selecting a navigation only matters with $expand, which adds it
        prop = entity.prop(name)
        if prop is None:
            raise ODataError(f"Unknown property '{name}' on {entity.entity_type}.", option=option)
        if prop not in chosen:
            chosen.append(prop)
    if not chosen:
        raise ODataError(f"{option} names no property of {entity.entity_type}.", option=option)
    return chosen


def _expand(entity: type[EntitySet], text: str) -> list[tuple[Nav, list[Prop]]]:
    out: list[tuple[Nav, list[Prop]]] = []
    for raw in _split(text):
        match = _EXPAND_ITEM.match(raw)
        if match is None:
            raise ODataError(
                f"$expand item “{raw.strip()}” is not a navigation property.", option="$expand"
            )
        name, options = match.group(1), match.group(2)
        navs = list(entity.navigations) if name == "*" else [entity.nav(name)]
        if navs == [None]:
            raise ODataError(
                f"Unknown navigation property '{name}' on {entity.entity_type}"
                + (
                    f" (it has {', '.join(n.name for n in entity.navigations)})."
                    if entity.navigations
                    else ": it has none."
                ),
                option="$expand",
            )
        for nav in navs:
            if nav is None:
                continue
            target = target_of(nav)
            props = list(target.properties)
            if options is not None and options.strip():
                key, _, value = options.strip().partition("=")
                if key.strip() != "$select" or ";" in value:
                    raise ODataError(
                        f"Only $select is supported inside $expand ({nav.name}(...)).",
                        option="$expand",
                    )
                props = _select(target, value, option=f"$expand={nav.name}($select)")
            out.append((nav, props))
    return out


def _orderby(entity: type[EntitySet], text: str) -> list[Any]:
    order: list[Any] = []
    for raw in _split(text):
        match = _ORDER_ITEM.match(raw)
        if match is None:
            raise ODataError(
                f"$orderby item “{raw.strip()}” must be a property, optionally followed by asc "
                "or desc.",
                option="$orderby",
            )
        try:
            found = resolve(entity, match.group(1).split("/"))
        except ODataError as exc:
            exc.option = "$orderby"
            raise
        # OData sorts null before every value. Said only where a null can occur: an
        # explicit NULLS FIRST on a column that has none would keep PostgreSQL from
        # reading it in index order (the due-refunds query's DueDate).
        field = F(found.path)
        if match.group(2) == "desc":
            order.append(field.desc(nulls_last=True) if found.nullable else field.desc())
        else:
            order.append(field.asc(nulls_first=True) if found.nullable else field.asc())
    return order


def _count(value: str) -> bool:
    if value not in ("true", "false"):
        raise ODataError(f"$count must be true or false, not “{value}”.", option="$count")
    return value == "true"


def _int(option: str, value: str) -> int:
    if not _INTEGER.match(value):
        raise ODataError(
            f"{option} must be a whole number of 0 or more, not “{value}”.", option=option
        )
    return int(value)


@dataclass
class Query:
    entity: type[EntitySet]
    where: Q | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    select: list[Prop] = field(default_factory=list)
    selected: bool = False  # whether $select was given (the context URL says so)
    expand: list[tuple[Nav, list[Prop]]] = field(default_factory=list)
    order: list[Any] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False


def parse(entity: type[EntitySet], params: Any) -> Query:
    """The query options of a request (`request.GET`). Options this service does not know
    are refused, rather than ignored: a client that sent `$search` would otherwise be
    answered as though it had filtered."""
    for name in params:
        if name.startswith("$") and name not in OPTIONS:
            raise ODataError(
                f"The query option {name} is not supported; supported: "
                f"{', '.join(sorted(OPTIONS))}.",
                option=name,
            )
        if name.startswith("$") and len(params.getlist(name)) > 1:
            raise ODataError(f"The query option {name} is given more than once.", option=name)
        if name.startswith("$") and _CONTROL.search(params.get(name, "")):
            # PostgreSQL cannot take a NUL in a string: refused here, not a 500 there.
            raise ODataError(f"{name} contains a control character.", option=name)
    query = Query(entity, select=list(entity.properties))
    if (fmt := params.get("$format")) is not None and fmt.split(";")[0].strip() not in (
        "json",
        "application/json",
    ):
        raise ODataError(
            f"$format “{fmt}” is not supported: this service answers JSON.", option="$format"
        )
    if (text := params.get("$filter")) is not None:
        query.where, query.annotations = parse_filter(entity, text)
    if (text := params.get("$select")) is not None:
        query.select, query.selected = _select(entity, text), True
    if (text := params.get("$expand")) is not None:
        query.expand = _expand(entity, text)
    if (text := params.get("$orderby")) is not None:
        query.order = _orderby(entity, text)
    if (text := params.get("$top")) is not None:
        query.top = _int("$top", text)
    if (text := params.get("$skip")) is not None:
        query.skip = _int("$skip", text)
    if (text := params.get("$count")) is not None:
        query.count = _count(text)
    return query


def key_value(entity: type[EntitySet], text: str) -> Any:
    """The key in `Refunds(5)` or `BillingTransactionCodes('ATH')`."""
    prop = entity.key_prop()
    text = text.strip()
    if _CONTROL.search(text):
        raise ODataError(f"The key of {entity.entity_type} contains a control character.")
    name = f"{prop.name}="
    if text.startswith(name):
        text = text[len(name) :]
    if prop.edm == "Edm.Int32":
        if not re.fullmatch(r"\d{1,9}", text):
            raise ODataError(f"The key of {entity.entity_type} is a whole number, not “{text}”.")
        return int(text)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    raise ODataError(f"The key of {entity.entity_type} is a string in quotes, e.g. ('{text}').")
