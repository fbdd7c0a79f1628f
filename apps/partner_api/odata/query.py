"""An OData request's query options turned into one queryset.

`$filter` is parsed by the maintained `odata-query` package (its lexer and parser give the
expression tree, its Django visitor the `Q`); this module only maps the OData names to the
entity set's Django field paths and checks the expression's types first, so a wrong name
or a comparison the database cannot make is a 400 that names it, never a 500."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db.models import F, Q, Value
from odata_query import ast
from odata_query import exceptions as odata_errors
from odata_query.django.django_q import AstToDjangoQVisitor
from odata_query.grammar import ODataLexer, ODataParser

from .entities import EntitySet, Nav, Prop, target_of

OPTIONS = {"$filter", "$select", "$orderby", "$top", "$skip", "$expand", "$count", "$format"}
NUMERIC = {"Edm.Int32", "Edm.Decimal"}
TEMPORAL = {"Edm.Date", "Edm.DateTimeOffset"}


class ODataError(Exception):
    """A query the service refuses: a 400 whose detail names what is wrong."""

    def __init__(self, detail: str, *, option: str = "", position: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.option = option
        self.position = position


def max_page_size() -> int:
    return int(getattr(settings, "FEESYNC_ODATA_MAX_PAGE_SIZE", 1000))


# --- names --------------------------------------------------------------------------------


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


def _names(node: ast._Node) -> list[str]:
    if isinstance(node, ast.Identifier):
        if node.namespace:
            raise ODataError(f"Unknown property '{'.'.join((*node.namespace, node.name))}'.")
        return [node.name]
    if isinstance(node, ast.Attribute):
        return [*_names(node.owner), node.attr]
    raise ODataError("A navigation path must be made of property names.")


# --- $filter --------------------------------------------------------------------------------

_FUNCTIONS: dict[str, tuple[tuple[set[str], ...], str]] = {
    "contains": (({"Edm.String"}, {"Edm.String"}), "Edm.Boolean"),
    "startswith": (({"Edm.String"}, {"Edm.String"}), "Edm.Boolean"),
    "endswith": (({"Edm.String"}, {"Edm.String"}), "Edm.Boolean"),
    "tolower": (({"Edm.String"},), "Edm.String"),
    "toupper": (({"Edm.String"},), "Edm.String"),
    "trim": (({"Edm.String"},), "Edm.String"),
    "length": (({"Edm.String"},), "Edm.Int32"),
    "year": ((TEMPORAL,), "Edm.Int32"),
    "month": ((TEMPORAL,), "Edm.Int32"),
    "day": ((TEMPORAL,), "Edm.Int32"),
}
_LITERALS: dict[type[ast._Node], str] = {
    ast.Integer: "Edm.Int32",
    ast.Float: "Edm.Decimal",
    ast.String: "Edm.String",
    ast.Boolean: "Edm.Boolean",
    ast.Date: "Edm.Date",
    ast.DateTime: "Edm.DateTimeOffset",
    ast.Null: "null",
}
_OPERATORS = {
    ast.Eq: "eq",
    ast.NotEq: "ne",
    ast.Lt: "lt",
    ast.LtE: "le",
    ast.Gt: "gt",
    ast.GtE: "ge",
    ast.In: "in",
}


def _compatible(a: str, b: str) -> bool:
    if "null" in (a, b):
        return True
    return a == b or {a, b} <= NUMERIC or {a, b} <= TEMPORAL


def _describe(node: ast._Node) -> str:
    if isinstance(node, ast.Identifier | ast.Attribute):
        return "/".join(_names(node))
    if isinstance(node, ast.String):
        return f"'{node.val}'"
    return str(getattr(node, "val", type(node).__name__))


class _Checker:
    """Walks the parsed `$filter`: every name is one of the set's properties, every
    comparison compares like with like, and the whole is a condition. Returns the tree with
    a bare Boolean property `IsActive` written as `IsActive eq true` (the form the
    Django visitor can filter on)."""

    def __init__(self, entity: type[EntitySet]) -> None:
        self.entity = entity

    def condition(self, node: ast._Node) -> ast._Node:
        node, kind = self.check(node)
        if kind != "Edm.Boolean":
            raise ODataError(f"$filter must be a condition, not a value of type {kind}.")
        if isinstance(node, ast.Identifier | ast.Attribute):
            return ast.Compare(ast.Eq(), node, ast.Boolean("true"))
        if isinstance(node, ast.Boolean):
            raise ODataError("$filter must compare a property, not be true or false alone.")
        return node

    def check(self, node: ast._Node) -> tuple[ast._Node, str]:
        if isinstance(node, ast.Identifier | ast.Attribute):
            return node, resolve(self.entity, _names(node)).prop.edm
        if type(node) in _LITERALS:
            return node, _LITERALS[type(node)]
        if isinstance(node, ast.BoolOp):
            left = self.condition(node.left)
            right = self.condition(node.right)
            return ast.BoolOp(node.op, left, right), "Edm.Boolean"
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.Not):
                raise ODataError("Negation (-) of a property is not supported in $filter.")
            return ast.UnaryOp(node.op, self.condition(node.operand)), "Edm.Boolean"
        if isinstance(node, ast.Compare):
            return self.compare(node), "Edm.Boolean"
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.BinOp):
            raise ODataError("Arithmetic (add, sub, mul, div, mod) is not supported in $filter.")
        if isinstance(node, ast.CollectionLambda):
            raise ODataError(
                "any() and all() are not supported: these entity sets have no "
                "collection-valued properties."
            )
        raise ODataError(f"{type(node).__name__} values are not supported in $filter.")

    def compare(self, node: ast.Compare) -> ast.Compare:
        op = _OPERATORS[type(node.comparator)]
        left, ltype = self.check(node.left)
        if isinstance(node.comparator, ast.In):
            if not isinstance(node.right, ast.List):
                raise ODataError("'in' needs a list of values, e.g. Status in ('N','S').")
            for item in node.right.val:
                _, itype = self.check(item)
                if itype == "null" or not _compatible(ltype, itype):
                    raise ODataError(
                        f"{_describe(node.left)} is {ltype}: {_describe(item)} in its 'in' "
                        "list is not."
                    )
            return ast.Compare(node.comparator, left, node.right)
        right, rtype = self.check(node.right)
        is_value = (ast.Identifier, ast.Attribute, ast.Call)
        if not isinstance(left, is_value) and not isinstance(right, is_value):
            raise ODataError(f"'{op}' must compare a property (here two values are compared).")
        if (
            "Edm.Boolean" in (ltype, rtype)
            and op not in ("eq", "ne")
            and "null"
            not in (
                ltype,
                rtype,
            )
        ):
            raise ODataError(f"'{op}' cannot compare Edm.Boolean values: use eq or ne.")
        if "null" in (ltype, rtype) and op not in ("eq", "ne"):
            raise ODataError(f"'{op}' cannot compare with null: use eq null or ne null.")
        if not _compatible(ltype, rtype):
            prop, value = (node.left, node.right)
            if not isinstance(prop, is_value):
                prop, value = value, prop
                ltype, rtype = rtype, ltype
            raise ODataError(
                f"{_describe(prop)} is {ltype}; {_describe(value)} is {rtype}: "
                f"'{op}' cannot compare them."
            )
        return ast.Compare(node.comparator, left, right)

    def call(self, node: ast.Call) -> tuple[ast._Node, str]:
        name = node.func.full_name()
        if name not in _FUNCTIONS:
            raise ODataError(
                f"Function '{name}' is not supported in $filter; supported: "
                + ", ".join(sorted(_FUNCTIONS))
                + "."
            )
        wants, returns = _FUNCTIONS[name]
        if len(node.args) != len(wants):
            raise ODataError(f"Function '{name}' takes {len(wants)} argument(s).")
        args = []
        for i, (arg, want) in enumerate(zip(node.args, wants, strict=True)):
            arg, kind = self.check(arg)
            if kind not in want:
                raise ODataError(
                    f"Argument {i + 1} of '{name}' must be {' or '.join(sorted(want))}, not {kind}."
                )
            if i == 0 and not isinstance(arg, ast.Identifier | ast.Attribute | ast.Call):
                raise ODataError(f"The first argument of '{name}' must be a property.")
            if i > 0 and not isinstance(arg, ast.String):
                raise ODataError(f"The second argument of '{name}' must be a string literal.")
            args.append(arg)
        return ast.Call(node.func, args), returns


class _ToQ(AstToDjangoQVisitor):
    """odata-query's Django visitor, with the entity set's names mapped to field paths and
    literals made the types the columns hold (Decimal for money, aware datetimes)."""

    def __init__(self, entity: type[EntitySet]) -> None:
        super().__init__(entity.model)
        self.entity = entity

    def visit_Identifier(self, node: ast.Identifier) -> F:
        return F(resolve(self.entity, _names(node)).path)

    def visit_Attribute(self, node: ast.Attribute) -> F:
        return F(resolve(self.entity, _names(node)).path)

    def visit_Float(self, node: ast.Float) -> Value:
        try:
            return Value(Decimal(node.val))
        except InvalidOperation:
            raise ODataError(f"{node.val} is not a number.") from None

    def visit_DateTime(self, node: ast.DateTime) -> Value:
        try:
            value = node.py_val
        except ValueError:
            raise ODataError(f"{node.val} is not a valid date and time.") from None
        if value.tzinfo is None:
            raise ODataError(
                f"{node.val} needs a time zone offset (Z or ±hh:mm): it is an Edm.DateTimeOffset."
            )
        return Value(value)

    def visit_Date(self, node: ast.Date) -> Value:
        try:
            return Value(node.py_val)
        except ValueError:
            raise ODataError(f"{node.val} is not a valid date.") from None


_lexer = ODataLexer()
_parser = ODataParser()


def _position_error(text: str, exc: odata_errors.ODataSyntaxError) -> ODataError:
    token = getattr(exc, "token", None)
    if token is None or getattr(exc, "eof", False):
        return ODataError(
            f"The $filter expression ends too early: “{text}” is incomplete.",
            option="$filter",
            position=len(text),
        )
    index = int(getattr(token, "index", 0))
    near = text[index : index + 20]
    return ODataError(
        f"The $filter expression is not valid at position {index}: near “{near}”.",
        option="$filter",
        position=index,
    )


def parse_filter(entity: type[EntitySet], text: str) -> tuple[Q, dict[str, Any]]:
    """(`Q`, annotations the `Q` needs) for a `$filter`."""
    try:
        tree = _parser.parse(_lexer.tokenize(text))
    except odata_errors.ODataSyntaxError as exc:
        raise _position_error(text, exc) from None
    except (odata_errors.ODataException, ValueError, IndexError) as exc:
        raise ODataError(f"The $filter expression is not valid: {exc}", option="$filter") from None
    if tree is None:
        raise ODataError("$filter is empty.", option="$filter")
    try:
        tree = _Checker(entity).condition(tree)
        visitor = _ToQ(entity)
        q = visitor.visit(tree)
    except ODataError as exc:
        exc.option = "$filter"
        raise
    except odata_errors.ODataException as exc:
        raise ODataError(f"The $filter expression is not valid: {exc}", option="$filter") from None
    return q, visitor.queryset_annotations


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
