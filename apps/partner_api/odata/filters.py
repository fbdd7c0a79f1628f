"""`$filter`, parsed by the maintained `odata-query` package (its lexer and parser give the
expression tree, its Django visitor the `Q`). This module maps the OData names to the entity
set's Django field paths and checks the expression's types first, so a wrong name or a
comparison the database cannot make is a 400 that names it, never a 500."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import F, Q, Value
from odata_query import ast
from odata_query import exceptions as odata_errors
from odata_query.django.django_q import AstToDjangoQVisitor
from odata_query.grammar import ODataLexer, ODataParser

from .entities import EntitySet
from .names import ODataError, names_of, resolve

NUMERIC = {"Edm.Int32", "Edm.Decimal"}
TEMPORAL = {"Edm.Date", "Edm.DateTimeOffset"}

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
        return "/".join(names_of(node))
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
            return node, resolve(self.entity, names_of(node)).prop.edm
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
        return F(resolve(self.entity, names_of(node)).path)

    def visit_Attribute(self, node: ast.Attribute) -> F:
        return F(resolve(self.entity, names_of(node)).path)

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
