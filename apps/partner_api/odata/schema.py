"""The OData endpoints in the OpenAPI schema (drf-spectacular), derived from the entity
set declarations: the query options as parameters, each set's entities as the response."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from ..views import PROBLEMS
from .entities import EDM_TYPES, EntitySet, Nav, target_of

JSON_V4 = "application/json"


def _param(name: str, description: str, **more: Any) -> OpenApiParameter:
    kind = more.pop("type", str)
    return OpenApiParameter(name, kind, "query", required=False, description=description, **more)


def _options(entity: type[EntitySet], v2: bool, *, single: bool = False) -> list[OpenApiParameter]:
    props = ", ".join(p.name for p in entity.properties)
    navs = ", ".join(n.name for n in entity.navigations) or "none"
    select = _param("$select", f"Comma-separated properties to return: {props}.")
    expand = _param(
        "$expand",
        f"Navigation properties to include ({navs}), each optionally with `($select=A,B)`.",
    )
    if single:
        return [select] if v2 else [select, expand]
    params = [
        _param(
            "$filter",
            f"A condition on {entity.entity_type}'s properties ({props}) and, through its "
            f"navigations ({navs}), their targets' (e.g. `StudentAward/FundSourceId eq 3`): "
            "eq, ne, lt, le, gt, ge, in, and, or, not, parentheses; contains, startswith, "
            "endswith, tolower, toupper, trim, length, year, month, day.",
        ),
        select,
        _param("$orderby", "Comma-separated properties (or navigation paths), each asc or desc."),
        _param(
            "$top", "At most this many rows (pages of the service's maximum page size).", type=int
        ),
        _param("$skip", "Skip this many rows.", type=int),
    ]
    if v2:
        params.append(
            _param(
                "$inlinecount",
                "allpages: include the total count (`__count`).",
                enum=["allpages", "none"],
            )
        )
    else:
        params += [
            expand,
            _param(
                "$count", "true: include the total count (`@odata.count`).", enum=["true", "false"]
            ),
            OpenApiParameter(
                "Prefer",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="`odata.maxpagesize=N`: smaller pages than the service's maximum.",
            ),
        ]
    return params


def _value_schema(edm: str, nullable: bool, v2: bool) -> dict[str, Any]:
    if v2 and edm in ("Edm.Decimal", "Edm.Date", "Edm.DateTimeOffset"):
        schema: dict[str, Any] = {"type": "string"}
    else:
        schema = dict(EDM_TYPES[edm])
    if nullable:
        schema["nullable"] = True
    return schema


def entity_schema(entity: type[EntitySet], v2: bool, *, expand: bool = True) -> dict[str, Any]:
    properties: dict[str, Any] = {
        p.name: {**_value_schema(p.edm, p.nullable, v2), "description": p.description or p.edm}
        for p in entity.properties
    }
    if v2:
        properties["__metadata"] = {"type": "object"}
    elif expand:
        for nav in entity.navigations:
            properties[nav.name] = _nav_schema(nav)
    return {"type": "object", "properties": properties}


def _nav_schema(nav: Nav) -> dict[str, Any]:
    schema = entity_schema(target_of(nav), False, expand=False)
    schema["description"] = f"With $expand={nav.name}."
    schema["nullable"] = True
    return schema


def _collection(entity: type[EntitySet], v2: bool) -> dict[str, Any]:
    rows = {"type": "array", "items": entity_schema(entity, v2)}
    if v2:
        return {
            "type": "object",
            "required": ["d"],
            "properties": {
                "d": {
                    "type": "object",
                    "required": ["results"],
                    "properties": {
                        "results": rows,
                        "__count": {"type": "string"},
                        "__next": {"type": "string"},
                    },
                }
            },
        }
    return {
        "type": "object",
        "required": ["@odata.context", "value"],
        "properties": {
            "@odata.context": {"type": "string"},
            "@odata.count": {"type": "integer", "description": "With $count=true."},
            "value": rows,
            "@odata.nextLink": {"type": "string", "description": "The next page, if any."},
        },
    }


# Each operation also says `exclude=v2`: the version 2 dialect is for clients that read its
# $metadata, not OpenAPI, so the public schema describes the version 4 contract
# (docs/partner-api.md has both).
def _tag(v2: bool) -> list[str]:
    return ["OData (version 2)"] if v2 else ["OData"]


def _problems(*codes: int) -> dict[Any, OpenApiResponse]:
    return {k: v for k, v in PROBLEMS.items() if k[0] in codes}


def _suffix(v2: bool) -> str:
    return "_v2" if v2 else ""


def collection_schema(entity: type[EntitySet], v2: bool) -> Any:
    return extend_schema(
        operation_id=f"odata_{entity.name}{_suffix(v2)}",
        summary=f"Query {entity.name}",
        description=f"{entity.description} Requires {entity.permission()}. Server-paged: "
        "a page holds at most the service's maximum page size, and `@odata.nextLink` "
        "(version 2: `__next`) is the next page.",
        parameters=_options(entity, v2),
        responses={
            (200, JSON_V4): OpenApiResponse(_collection(entity, v2)),
            **_problems(400, 401, 403),
        },
        tags=_tag(v2),
        exclude=v2,
    )


def count_schema(entity: type[EntitySet], v2: bool) -> Any:
    return extend_schema(
        operation_id=f"odata_{entity.name}_count{_suffix(v2)}",
        summary=f"Count {entity.name}",
        description=f"How many {entity.name} match `$filter` (plain text). Requires "
        f"{entity.permission()}.",
        parameters=[p for p in _options(entity, v2) if p.name == "$filter"],
        responses={
            (200, "text/plain"): OpenApiResponse({"type": "string"}),
            **_problems(400, 401, 403),
        },
        tags=_tag(v2),
        exclude=v2,
    )


def single_schema(entity: type[EntitySet], v2: bool) -> Any:
    key = entity.key_prop()
    example = "5" if key.edm == "Edm.Int32" else "'ATH'"
    body = entity_schema(entity, v2)
    if v2:
        body = {"type": "object", "required": ["d"], "properties": {"d": body}}
    else:
        body = {**body, "required": ["@odata.context"]}
        body["properties"] = {"@odata.context": {"type": "string"}, **body["properties"]}
    return extend_schema(
        operation_id=f"odata_{entity.name}_by_key{_suffix(v2)}",
        summary=f"One {entity.entity_type} by its {key.name}",
        description=f"`{entity.name}({example})`. Requires {entity.permission()}.",
        parameters=[
            OpenApiParameter(
                "key",
                str,
                "path",
                description=f"The {key.name}, e.g. {example}.",
                # Keys the service can answer for: a number, or a quoted code (a "/" in a
                # path segment would never reach it).
                pattern=r"^[0-9]{1,9}$" if key.edm == "Edm.Int32" else r"^'[A-Za-z0-9_-]{1,20}'$",
            ),
            *_options(entity, v2, single=True),
        ],
        responses={(200, JSON_V4): OpenApiResponse(body), **_problems(400, 401, 403, 404)},
        tags=_tag(v2),
        exclude=v2,
    )


def document_schema(v2: bool) -> Any:
    body: dict[str, Any] = (
        {"type": "object", "properties": {"d": {"type": "object"}}}
        if v2
        else {
            "type": "object",
            "required": ["@odata.context", "value"],
            "properties": {
                "@odata.context": {"type": "string"},
                "value": {"type": "array", "items": {"type": "object"}},
            },
        }
    )
    return extend_schema(
        operation_id=f"odata_service_document{_suffix(v2)}",
        summary="The OData service document: its entity sets",
        responses={(200, JSON_V4): OpenApiResponse(body), **_problems(401, 403)},
        tags=_tag(v2),
        exclude=v2,
    )


def metadata_schema(v2: bool) -> Any:
    return extend_schema(
        operation_id=f"odata_metadata{_suffix(v2)}",
        summary="The OData $metadata document (CSDL XML, EDMX "
        + ("1.0, OData 2.0)" if v2 else "4.0)"),
        responses={
            (200, "application/xml"): OpenApiResponse({"type": "string"}),
            **_problems(401, 403),
        },
        tags=_tag(v2),
        exclude=v2,
    )


def odata_paths(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list[Any]:
    """drf-spectacular's preprocessing hook: the OData paths as OData writes them
    (`/api/odata/$metadata`, `/api/odata/Refunds({key})`), not as read off their regexes."""
    out = []
    for path, regex, method, callback in endpoints:
        own = getattr(getattr(callback, "cls", None), "schema_path", None)
        if own is not None and "/odata/" in path:
            path = path[: path.index("/odata/") + len("/odata/")] + own
        out.append((path, regex, method, callback))
    return out
