"""The OData endpoints: the service document, `$metadata`, each entity set's collection,
`$count` and single entity by key, in version 4 at `/api/odata/` and in the version 2
dialect at `/api/odata/v2/`.

Signed in as any partner-API user (HTTP Basic or an application key, as the rest of the
API); reading an entity set needs its own `StudentAccounts.<Entity>.Query` permission (a
403 problem naming it otherwise), and shows only the rows the API user's integration may
see (`sets.py`). A query the service refuses is a 400 problem naming the option and what
is wrong in it."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from django.http import HttpResponse
from django.urls import reverse
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..calls import call_log
from ..permissions import api_user_of
from ..problems import problem_response
from . import render, selectors
from .entities import EntitySet
from .metadata import metadata_v2, metadata_v4
from .query import ODataError, Query, key_value, max_page_size, parse

JSON_V4 = "application/json;odata.metadata=minimal;odata.streaming=true"
_PREFER_PAGE = re.compile(r"(?:^|[,;\s])odata\.maxpagesize=(\d{1,9})", re.I)
_V2_LITERALS = re.compile(r"(\bdatetime(?:offset)?'[^']*'|'(?:[^']|'')*')")
_V2_NUMBER_SUFFIX = re.compile(r"\b(\d+(?:\.\d+)?)[mMdDlLfF]\b")


def v2_filter(text: str) -> str:
    """A version 2 `$filter` in version 4's syntax: `datetime'2025-10-15T00:00:00'` is a
    plain date (or date-time) literal there and `12.50M` a plain number. Quoted strings are
    left alone."""

    def piece(i: int, part: str) -> str:
        if i % 2 == 0:
            return _V2_NUMBER_SUFFIX.sub(r"\1", part)
        if not part.startswith("datetime"):
            return part  # a string literal
        value = part[part.index("'") + 1 : -1]
        if value.endswith(("T00:00:00", "T00:00")):
            return value.split("T")[0]
        return value if re.search(r"(Z|[+-]\d\d:\d\d)$", value) else value + "Z"

    parts = _V2_LITERALS.split(text)
    return "".join(piece(i, part) for i, part in enumerate(parts))


class _ODataView(APIView):
    """What every OData endpoint shares: content negotiation that never refuses (OData
    clients send Accept headers DRF would not match: the service answers JSON or XML as
    the endpoint does), and refused queries as problems, logged for the dashboard."""

    renderer_classes = [JSONRenderer]
    entity: type[EntitySet] | None = None
    v2 = False

    @property
    def operation(self) -> str:
        return self.entity.permission() if self.entity is not None else ""

    def entity_set(self) -> type[EntitySet]:
        if self.entity is None:  # only the service document and $metadata have none
            raise RuntimeError(f"{type(self).__name__} serves no entity set")
        return self.entity

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return JSONRenderer(), "application/json"

    def root(self, request: Request) -> str:
        return request.build_absolute_uri(reverse("odata_v2_root" if self.v2 else "odata_root"))

    def refused(self, request: Request, exc: ODataError) -> Response:
        extra: dict[str, Any] = {}
        if exc.position is not None:
            extra["position"] = exc.position
        response = problem_response(
            400,
            "Invalid query",
            exc.detail,
            errors=[{"property": exc.option or "(query)", "detail": exc.detail}],
            extra=extra,
        )
        call_log(
            api_user=api_user_of(request), operation=self.operation or "OData", response=response
        )
        return response

    def parsed(self, request: Request) -> Query:
        params: Any = request.GET
        if self.v2:
            params = params.copy()
            if "$inlinecount" in params:
                inline: str = params.pop("$inlinecount")[-1]
                if inline not in ("allpages", "none"):
                    raise ODataError(
                        f"$inlinecount must be allpages or none, not “{inline}”.",
                        option="$inlinecount",
                    )
                params["$count"] = "true" if inline == "allpages" else "false"
            if "$filter" in params:
                params["$filter"] = v2_filter(params["$filter"])
            if "$expand" in params:
                raise ODataError(
                    "$expand is offered by the version 4 service at /api/odata/.", option="$expand"
                )
        return parse(self.entity_set(), params)

    def json(
        self, body: str, status: int = 200, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        response = HttpResponse(
            body.encode(), status=status, content_type="application/json" if self.v2 else JSON_V4
        )
        response["DataServiceVersion" if self.v2 else "OData-Version"] = "2.0" if self.v2 else "4.0"
        for name, value in (headers or {}).items():
            response[name] = value
        return response


def _ieee754(request: Request) -> bool:
    wanted = request.headers.get("Accept", "") + ";" + request.GET.get("$format", "")
    return "ieee754compatible=true" in wanted.replace(" ", "").lower()


class ServiceDocument(_ODataView):
    def get(self, request: Request) -> HttpResponse:
        sets = list(EntitySet.registry.values())
        if self.v2:
            names = ",".join(f'"{s.name}"' for s in sets)
            return self.json(f'{{"d":{{"EntitySets":[{names}]}}}}')
        root = self.root(request)
        value = ",".join(f'{{"name":"{s.name}","kind":"EntitySet","url":"{s.name}"}}' for s in sets)
        return self.json(f'{{"@odata.context":"{root}$metadata","value":[{value}]}}')


class Metadata(_ODataView):
    def get(self, request: Request) -> HttpResponse:
        body = metadata_v2() if self.v2 else metadata_v4()
        response = HttpResponse(body, content_type="application/xml")
        response["DataServiceVersion" if self.v2 else "OData-Version"] = "2.0" if self.v2 else "4.0"
        return response


class Collection(_ODataView):
    def get(self, request: Request) -> HttpResponse | Response:
        entity = self.entity_set()
        try:
            query = self.parsed(request)
        except ODataError as exc:
            return self.refused(request, exc)
        api_user = api_user_of(request)
        size, headers = max_page_size(), {}
        if match := _PREFER_PAGE.search(request.headers.get("Prefer", "")):
            size = max(1, min(size, int(match.group(1))))
            headers["Preference-Applied"] = f"odata.maxpagesize={size}"
        found = selectors.page(query, api_user, page_size=size)
        root = self.root(request)
        next_link = self._next_link(request, query, found.size) if found.more else None
        entities = [
            render.entity_json(
                entity,
                row,
                query.select,
                query.expand,
                ieee754=_ieee754(request),
                v2_root=root if self.v2 else None,
            )
            for row in found.rows
        ]
        context = render.context_url(
            root, entity, query.select if query.selected else None, query.expand
        )
        body = render.collection_json(
            context=context, entities=entities, count=found.count, next_link=next_link, v2=self.v2
        )
        return self.json(body, headers=headers)

    def _next_link(self, request: Request, query: Query, size: int) -> str:
        params = [(k, v) for k, v in request.GET.items() if k not in ("$skip", "$top")]
        params.append(("$skip", str(query.skip + size)))
        if query.top is not None:
            params.append(("$top", str(query.top - size)))
        url = request.build_absolute_uri(request.path)
        return url + "?" + urlencode(params, quote_via=quote, safe="$/'(),:")


class Count(_ODataView):
    def get(self, request: Request) -> HttpResponse | Response:
        try:
            query = self.parsed(request)
        except ODataError as exc:
            return self.refused(request, exc)
        n = selectors.count(query, api_user_of(request))
        response = HttpResponse(str(n), content_type="text/plain")
        response["DataServiceVersion" if self.v2 else "OData-Version"] = "2.0" if self.v2 else "4.0"
        return response


class Single(_ODataView):
    def get(self, request: Request, key: str) -> HttpResponse | Response:
        entity = self.entity_set()
        try:
            query = self.parsed(request)
            value = key_value(entity, key)
        except ODataError as exc:
            return self.refused(request, exc)
        row = selectors.one(entity, api_user_of(request), value, query)
        if row is None:
            return problem_response(
                404,
                "Not found",
                f"No {entity.entity_type} has the key {key} (or it is not yours to see).",
            )
        root = self.root(request)
        body = render.entity_json(
            entity,
            row,
            query.select,
            query.expand,
            ieee754=_ieee754(request),
            v2_root=root if self.v2 else None,
        )
        if self.v2:
            return self.json('{"d":' + body + "}")
        context = render.context_url(
            root, entity, query.select if query.selected else None, query.expand, single=True
        )
        return self.json('{"@odata.context":' + f'"{context}",' + body[1:])
