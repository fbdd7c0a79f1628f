"""The OData paths, one set per declared entity set (so each has its own OpenAPI
description), for version 4 at `/api/odata/` and the version 2 dialect at
`/api/odata/v2/`."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from . import sets  # noqa: F401  - declares the entity sets
from .entities import EntitySet
from .schema import collection_schema, count_schema, document_schema, metadata_schema, single_schema
from .views import Collection, Count, Metadata, ServiceDocument, Single


def _view(
    base: type[Any], entity: type[EntitySet] | None, v2: bool, schema: Any, route: str
) -> Any:
    name = f"{entity.name if entity else ''}{base.__name__}{'V2' if v2 else ''}"

    # A class and a `get` per path: drf-spectacular reads each one's description off it.
    def get(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        return base.get(self, request, *args, **kwargs)

    attrs = {
        "entity": entity,
        "v2": v2,
        "__module__": __name__,
        "get": schema(get),
        # The path as OData has it ("$metadata", "Refunds({key})"), for the OpenAPI schema,
        # which would otherwise read it off the route's regex without "$" and parentheses.
        "schema_path": route.replace("<str:key>", "{key}"),
    }
    view: Any = type(name, (base,), attrs)
    return view.as_view()


def _patterns(v2: bool) -> list[URLPattern]:
    prefix, tag = ("v2/", "odata_v2") if v2 else ("", "odata")

    def route(suffix: str, base: type[Any], entity: Any, schema: Any, name: str) -> URLPattern:
        return path(prefix + suffix, _view(base, entity, v2, schema, prefix + suffix), name=name)

    patterns = [
        route("", ServiceDocument, None, document_schema(v2), f"{tag}_root"),
        route("$metadata", Metadata, None, metadata_schema(v2), f"{tag}_metadata"),
    ]
    for entity in EntitySet.registry.values():
        patterns += [
            route(
                entity.name,
                Collection,
                entity,
                collection_schema(entity, v2),
                f"{tag}_{entity.name}",
            ),
            route(
                f"{entity.name}/$count",
                Count,
                entity,
                count_schema(entity, v2),
                f"{tag}_{entity.name}_count",
            ),
            route(
                f"{entity.name}(<str:key>)",
                Single,
                entity,
                single_schema(entity, v2),
                f"{tag}_{entity.name}_single",
            ),
        ]
    return patterns


urlpatterns = _patterns(v2=False) + _patterns(v2=True)
