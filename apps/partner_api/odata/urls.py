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


def _view(base: type[Any], entity: type[EntitySet] | None, v2: bool, schema: Any) -> Any:
    name = f"{entity.name if entity else ''}{base.__name__}{'V2' if v2 else ''}"
    # A class per path: drf-spectacular reads each one's own description off its `get`.
    attrs = {"entity": entity, "v2": v2, "__module__": __name__, "get": schema(base.get)}
    view: Any = type(name, (base,), attrs)
    return view.as_view()


def _patterns(v2: bool) -> list[URLPattern]:
    prefix, tag = ("v2/", "v2") if v2 else ("", "")
    patterns = [
        path(
            prefix,
            _view(ServiceDocument, None, v2, document_schema(v2)),
            name=f"odata{tag and '_v2'}_root",
        ),
        path(
            f"{prefix}$metadata",
            _view(Metadata, None, v2, metadata_schema(v2)),
            name=f"odata{tag and '_v2'}_metadata",
        ),
    ]
    for entity in EntitySet.registry.values():
        patterns += [
            path(
                f"{prefix}{entity.name}",
                _view(Collection, entity, v2, collection_schema(entity, v2)),
                name=f"odata{tag and '_v2'}_{entity.name}",
            ),
            path(
                f"{prefix}{entity.name}/$count",
                _view(Count, entity, v2, count_schema(entity, v2)),
                name=f"odata{tag and '_v2'}_{entity.name}_count",
            ),
            path(
                f"{prefix}{entity.name}(<str:key>)",
                _view(Single, entity, v2, single_schema(entity, v2)),
                name=f"odata{tag and '_v2'}_{entity.name}_single",
            ),
        ]
    return patterns


urlpatterns = _patterns(v2=False) + _patterns(v2=True)
