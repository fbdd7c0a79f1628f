"""OData names and the Django paths behind them: `StudentAward/FundSourceId` on Refunds is
`student_award__fund_source_id`. A name that is not there is an `ODataError` saying which,
on which entity type."""

from __future__ import annotations

from dataclasses import dataclass

from odata_query import ast

from .entities import EntitySet, Prop, target_of


class ODataError(Exception):
    """A query the service refuses: a 400 whose detail names what is wrong."""

    def __init__(self, detail: str, *, option: str = "", position: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.option = option
        self.position = position


@dataclass(frozen=True)
class Resolved:
    prop: Prop
    path: str  # the Django lookup path from the queried set's model
    nullable: bool  # the property is nullable, or a navigation on the way may be missing


def resolve(entity: type[EntitySet], names: list[str]) -> Resolved:
    """`["StudentAward", "FundSourceId"]` on Refunds: the property and its Django path."""
    current, prefix, nullable = entity, "", False
    for name in names[:-1]:
        nav = current.nav(name)
        if nav is None:
            if current.prop(name) is not None:
                raise ODataError(f"'{name}' on {current.entity_type} is not a navigation property.")
            raise ODataError(f"Unknown navigation property '{name}' on {current.entity_type}.")
        prefix += nav.field + "__"
        nullable = nullable or nav.nullable
        current = target_of(nav)
    last = names[-1]
    prop = current.prop(last)
    if prop is None:
        if current.nav(last) is not None:
            raise ODataError(
                f"'{last}' on {current.entity_type} is a navigation property: name one of "
                f"its properties, e.g. {last}/{target_of(current.nav(last)).key}."  # type: ignore[arg-type]
            )
        raise ODataError(f"Unknown property '{last}' on {current.entity_type}.")
    return Resolved(prop, prefix + prop.field, nullable or prop.nullable)


def names_of(node: ast._Node) -> list[str]:
    if isinstance(node, ast.Identifier):
        if node.namespace:
            raise ODataError(f"Unknown property '{'.'.join((*node.namespace, node.name))}'.")
        return [node.name]
    if isinstance(node, ast.Attribute):
        return [*names_of(node.owner), node.attr]
    raise ODataError("A navigation path must be made of property names.")
