"""Rows as OData JSON.

Version 4 (`/api/odata/`): `{"@odata.context", "@odata.count"?, "value": [...],
"@odata.nextLink"?}`; Edm.Decimal as a JSON number written from the Decimal's own digits
(`12.50`, never through a float), or as a string when the client asks for
`IEEE754Compatible=true`; Edm.Date as `2025-10-15`, Edm.DateTimeOffset as ISO 8601 in UTC.

Version 2 (`/api/odata/v2/`, for clients that speak only that version, such as pyodata):
`{"d": {"results": [...], "__count"?, "__next"?}}`, decimals as strings and dates as
`/Date(milliseconds)/`, as that version's JSON format has them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from .entities import EntitySet, Nav, Prop, target_of

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _v4_value(prop: Prop, value: Any, ieee754: bool) -> str:
    if value is None:
        return "null"
    if prop.edm == "Edm.Decimal":
        text = format(Decimal(value).quantize(Decimal("0.01")), "f")
        return f'"{text}"' if ieee754 else text
    if prop.edm == "Edm.Date":
        return f'"{value.isoformat()}"'
    if prop.edm == "Edm.DateTimeOffset":
        return '"' + value.astimezone(UTC).isoformat().replace("+00:00", "Z") + '"'
    return json.dumps(value, ensure_ascii=False)


def _v2_value(prop: Prop, value: Any) -> str:
    if value is None:
        return "null"
    if prop.edm == "Edm.Decimal":
        return '"' + format(Decimal(value).quantize(Decimal("0.01")), "f") + '"'
    if prop.edm == "Edm.Date":
        moment = datetime.combine(value, time(0), tzinfo=UTC)
        return f'"/Date({int((moment - _EPOCH).total_seconds() * 1000)})/"'
    if prop.edm == "Edm.DateTimeOffset":
        millis = int((value - _EPOCH).total_seconds() * 1000)
        return f'"/Date({millis}+0000)/"'
    return json.dumps(value, ensure_ascii=False)


def _key_text(entity: type[EntitySet], value: Any) -> str:
    if entity.key_prop().edm == "Edm.String":
        return "'" + str(value).replace("'", "''") + "'"
    return str(value)


def entity_json(
    entity: type[EntitySet],
    row: dict[str, Any],
    select: list[Prop],
    expand: list[tuple[Nav, list[Prop]]],
    *,
    ieee754: bool = False,
    v2_root: str | None = None,
) -> str:
    """One entity; `v2_root` (the service root URL) writes it in the version 2 format."""
    parts: list[str] = []
    if v2_root is not None:
        key = row.get(entity.key)
        meta = {"type": f"FeeSync.{entity.entity_type}"}
        if key is not None:
            meta["uri"] = f"{v2_root}{entity.name}({_key_text(entity, key)})"
        parts.append('"__metadata":' + json.dumps(meta))
    for prop in select:
        value = row.get(prop.name)
        text = _v2_value(prop, value) if v2_root is not None else _v4_value(prop, value, ieee754)
        parts.append(f'"{prop.name}":{text}')
    for nav, props in expand:
        related = row.get(nav.name)
        if related is None:
            parts.append(f'"{nav.name}":null')
        else:
            inner = entity_json(
                target_of(nav), related, props, [], ieee754=ieee754, v2_root=v2_root
            )
            parts.append(f'"{nav.name}":{inner}')
    return "{" + ",".join(parts) + "}"


def collection_json(
    *,
    context: str | None,
    entities: list[str],
    count: int | None,
    next_link: str | None,
    v2: bool = False,
) -> str:
    if v2:
        body = ['"results":[' + ",".join(entities) + "]"]
        if count is not None:
            body.append(f'"__count":"{count}"')
        if next_link:
            body.append('"__next":' + json.dumps(next_link))
        return '{"d":{' + ",".join(body) + "}}"
    head = ['"@odata.context":' + json.dumps(context)]
    if count is not None:
        head.append(f'"@odata.count":{count}')
    head.append('"value":[' + ",".join(entities) + "]")
    if next_link:
        head.append('"@odata.nextLink":' + json.dumps(next_link))
    return "{" + ",".join(head) + "}"


def context_url(
    root: str,
    entity: type[EntitySet],
    select: list[Prop] | None,
    expand: list[tuple[Nav, list[Prop]]],
    *,
    single: bool = False,
) -> str:
    """`…/$metadata#Refunds(RefundId,Amount,StudentAward())`, as OData 4.0 § 10 has it."""
    items = [p.name for p in select] if select is not None else []
    items += [f"{nav.name}()" for nav, _ in expand]
    projection = f"({','.join(items)})" if items else ""
    return f"{root}$metadata#{entity.name}{projection}" + ("/$entity" if single else "")
