"""Reading an entity set for a query: the API user's rows, filtered, ordered by the query
and then by key (so pages never overlap or skip a row), one page at a time, as plain
values (no model instances: a page of 1,000 refunds is one query and no object churn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q, QuerySet

from ..models import ApiUser
from .entities import EntitySet
from .query import Query


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]  # OData name -> value; navigations as nested dicts or None
    count: int | None  # with $count=true: every row the filter matches, not just this page
    more: bool  # rows are left beyond this page (the response carries @odata.nextLink)
    size: int  # how many rows this page was allowed


def visible(entity: type[EntitySet], api_user: ApiUser) -> QuerySet[Any]:
    return entity.scope(entity.model._default_manager.all(), api_user)


def _filtered(query: Query, api_user: ApiUser) -> QuerySet[Any]:
    qs = visible(query.entity, api_user)
    if query.annotations:
        qs = qs.annotate(**query.annotations)
    if query.where is not None:
        qs = qs.filter(query.where)
    return qs


def count(query: Query, api_user: ApiUser) -> int:
    return _filtered(query, api_user).count()


def page(query: Query, api_user: ApiUser, *, page_size: int) -> Page:
    entity = query.entity
    qs = _filtered(query, api_user)
    total = qs.count() if query.count else None
    key = entity.key_prop().field
    qs = qs.order_by(*query.order, F(key).asc())
    columns: dict[str, str] = {f"p:{p.name}": p.field for p in query.select}
    for nav, props in query.expand:
        columns[f"n:{nav.name}:"] = f"{nav.field}__pk"
        for p in props:
            columns[f"n:{nav.name}:{p.name}"] = f"{nav.field}__{p.field}"
    size = page_size if query.top is None else min(query.top, page_size)
    # One more row than the page: whether there is a next page, without counting.
    limit = size + 1 if query.top is None or query.top > size else size
    fetched = list(qs.values_list(*columns.values())[query.skip : query.skip + limit])
    more = len(fetched) > size
    names = list(columns)
    rows = []
    for values in fetched[:size]:
        row: dict[str, Any] = {}
        navs: dict[str, dict[str, Any] | None] = {}
        for name, value in zip(names, values, strict=True):
            kind, _, rest = name.partition(":")
            if kind == "p":
                row[rest] = value
                continue
            nav_name, _, prop_name = rest.partition(":")
            if not prop_name:
                navs[nav_name] = {} if value is not None else None
            elif navs[nav_name] is not None:
                navs[nav_name][prop_name] = value  # type: ignore[index]
        row.update(navs)
        rows.append(row)
    return Page(rows=rows, count=total, more=more, size=size)


def one(
    entity: type[EntitySet], api_user: ApiUser, key: Any, query: Query
) -> dict[str, Any] | None:
    """The entity with that key (with the query's $select and $expand), if the API user
    may see it."""
    keyed = Query(
        entity,
        where=Q(**{entity.key_prop().field: key}),
        select=query.select,
        selected=query.selected,
        expand=query.expand,
    )
    found = page(keyed, api_user, page_size=1)
    return found.rows[0] if found.rows else None
