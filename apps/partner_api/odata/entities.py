"""Declaring an OData entity set: one class per set, naming its model, its key, its
properties (the OData PascalCase name, the EDM type, the Django field path behind it) and
its navigations to other sets. Everything else (the `$metadata` document, the OpenAPI
schema, `$filter`/`$select`/`$orderby`/`$expand`, the JSON) is derived from the declaration,
so adding an entity set is one class in `sets.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import models

from ..models import ApiUser

#: The EDM types a property may have, with the JSON Schema its JSON value matches.
EDM_TYPES: dict[str, dict[str, Any]] = {
    "Edm.Int32": {"type": "integer"},
    "Edm.String": {"type": "string"},
    "Edm.Boolean": {"type": "boolean"},
    # A JSON number by default; a string when the client asks for IEEE754Compatible=true.
    "Edm.Decimal": {"oneOf": [{"type": "number"}, {"type": "string"}]},
    "Edm.Date": {"type": "string", "format": "date"},
    "Edm.DateTimeOffset": {"type": "string", "format": "date-time"},
}

NAMESPACE = "FeeSync"


@dataclass(frozen=True)
class Prop:
    """One structural property: `name` as OData clients see it, `field` the Django lookup
    path from the set's model (`student__student_number`)."""

    name: str
    edm: str
    field: str
    nullable: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.edm not in EDM_TYPES:
            raise ValueError(f"{self.name}: unknown EDM type {self.edm}")


@dataclass(frozen=True)
class Nav:
    """A single-valued navigation to another entity set, through the foreign key (path)
    `field` of the set's model."""

    name: str
    target: str  # the entity set's name, e.g. "StudentAwards"
    field: str
    nullable: bool = True
    description: str = ""


class EntitySet:
    """Subclass per entity set. `scope()` says which rows an API user may see."""

    name: ClassVar[str]  # the entity set, e.g. "Refunds"
    entity_type: ClassVar[str]  # its entity type, e.g. "Refund"
    domain: ClassVar[str] = "StudentAccounts"
    model: ClassVar[type[models.Model]]
    key: ClassVar[str]  # the name of the key property
    properties: ClassVar[tuple[Prop, ...]]
    navigations: ClassVar[tuple[Nav, ...]] = ()
    description: ClassVar[str] = ""

    registry: ClassVar[dict[str, type[EntitySet]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        EntitySet.registry[cls.name] = cls

    @classmethod
    def permission(cls) -> str:
        """Anthology's `<Domain>.<Entity>.Query`."""
        return f"{cls.domain}.{cls.entity_type}.Query"

    @classmethod
    def scope(cls, queryset: models.QuerySet[Any], api_user: ApiUser) -> models.QuerySet[Any]:
        return queryset

    @classmethod
    def prop(cls, name: str) -> Prop | None:
        return next((p for p in cls.properties if p.name == name), None)

    @classmethod
    def nav(cls, name: str) -> Nav | None:
        return next((n for n in cls.navigations if n.name == name), None)

    @classmethod
    def key_prop(cls) -> Prop:
        found = cls.prop(cls.key)
        if found is None:
            raise LookupError(f"{cls.name}'s key {cls.key} is not one of its properties")
        return found


def entity_set(name: str) -> type[EntitySet] | None:
    return EntitySet.registry.get(name)


def target_of(nav: Nav) -> type[EntitySet]:
    return EntitySet.registry[nav.target]
