"""Evaluate a FHIRPath tree over FHIR JSON, with FHIRPath's collection semantics.

https://hl7.org/fhirpath/N1/ : every value is a collection; an empty operand makes an operator
empty; ``and``/``or`` are three-valued; ``=`` compares collections item by item. Choice elements
(``value`` → ``valueQuantity``) are resolved from the JSON keys and remember their type for
``ofType()``. Runtime problems (``single()`` of two values, ``<`` on a collection) are ViewErrors.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any

from fhirhub.views.errors import ViewError
from fhirhub.views.fhirpath_ast import (
    Binary,
    Call,
    Constant,
    EmptyLiteral,
    Indexer,
    Literal,
    Member,
    Node,
    TypeOp,
    Unary,
    Variable,
)
from fhirhub.views.fhirpath_functions import FUNCTION_IMPLEMENTATIONS, boolean_of, type_matches
from fhirhub.views.fhirpath_types import (
    CHOICE_SUFFIXES,
    Env,
    Frame,
    Item,
    is_number,
    temporal_kind,
    to_decimal,
)


def evaluate(node: Node, resource: Mapping[str, Any], env: Env | None = None) -> list[Item]:
    """Evaluate ``node`` with ``resource`` as its context (and ``%resource``)."""
    root = Item(resource, resource.get("resourceType") if isinstance(resource, Mapping) else None)
    env = env or Env({}, root)
    return TreeEvaluator(env).eval(node, Frame([root], [root]))


def evaluate_on(node: Node, focus: Item | None, env: Env) -> list[Item]:
    """Evaluate ``node`` with ``focus`` as its context (a forEach element; None for none)."""
    items = [] if focus is None else [focus]
    return TreeEvaluator(env).eval(node, Frame(items, items))


def children(item: Item, name: str) -> list[Item]:
    """``item.name``: the element's values, flattening arrays; choice elements by their suffix."""
    value = item.value
    if not isinstance(value, Mapping):
        return []
    kind: str | None = None
    if name in value:
        found = value[name]
    else:
        for key in value:
            if key.startswith(name) and key[len(name) :] in CHOICE_SUFFIXES:
                kind = CHOICE_SUFFIXES[key[len(name) :]]
                found = value[key]
                break
        else:
            return []
    if isinstance(found, list):
        return [Item(x, kind) for x in found if x is not None]
    return [] if found is None else [Item(found, kind)]


class TreeEvaluator:
    def __init__(self, env: Env):
        self.env = env

    def eval(self, node: Node, frame: Frame) -> list[Item]:
        if isinstance(node, Member):
            return self.member(node, frame)
        if isinstance(node, Call):
            items = frame.focus if node.source is None else self.eval(node.source, frame)
            call_frame = frame if node.source is None else Frame(items, frame.this, frame.index)
            return FUNCTION_IMPLEMENTATIONS[node.name](self, call_frame, items, node)
        if isinstance(node, Literal):
            return [Item(node.value, node.type)]
        if isinstance(node, Binary):
            return self.binary(node, frame)
        if isinstance(node, Indexer):
            return self.indexer(node, frame)
        if isinstance(node, Constant):
            return self.constant(node)
        if isinstance(node, Variable):
            if node.name == "this":
                return frame.this
            if node.name == "index" and frame.index is not None:
                return [Item(frame.index, "integer")]
            return []
        if isinstance(node, Unary):
            return self.unary(node, frame)
        if isinstance(node, TypeOp):
            items = self.eval(node.operand, frame)
            if len(items) > 1:
                raise ViewError(
                    f"FHIRPath: '{node.op}' needs a single value at position {node.pos}"
                )
            if node.op == "is":
                return [Item(type_matches(items[0], node.type_name), "boolean")] if items else []
            return [i for i in items if type_matches(i, node.type_name)]
        if isinstance(node, EmptyLiteral):
            return []
        raise ViewError(f"FHIRPath: cannot evaluate {type(node).__name__}")

    def member(self, node: Member, frame: Frame) -> list[Item]:
        if node.source is None:
            items = frame.focus
            if node.name[:1].isupper() and any(
                isinstance(i.value, Mapping) and i.value.get("resourceType") == node.name
                for i in items
            ):
                return [i for i in items if isinstance(i.value, Mapping)]
        else:
            items = self.eval(node.source, frame)
        return [child for item in items for child in children(item, node.name)]

    def constant(self, node: Constant) -> list[Item]:
        if node.name == "rowIndex":
            return [Item(self.env.row_index, "integer")]
        if node.name in ("resource", "rootResource", "context"):
            return [self.env.resource]
        if node.name not in self.env.constants:
            raise ViewError(f"FHIRPath: undefined constant %{node.name} at position {node.pos}")
        return list(self.env.constants[node.name])

    def indexer(self, node: Indexer, frame: Frame) -> list[Item]:
        items = self.eval(node.source, frame)
        index = self.eval(node.index, frame)
        if not index:
            return []
        value = index[0].value
        if len(index) > 1 or not isinstance(value, int) or isinstance(value, bool):
            raise ViewError(f"FHIRPath: an index must be one integer at position {node.pos}")
        return [items[value]] if 0 <= value < len(items) else []

    def unary(self, node: Unary, frame: Frame) -> list[Item]:
        items = self.eval(node.operand, frame)
        if not items:
            return []
        if len(items) > 1 or not is_number(items[0].value):
            raise ViewError(f"FHIRPath: '{node.op}' needs one number at position {node.pos}")
        value = items[0].value
        return [Item(-value if node.op == "-" else value, items[0].type)]

    def binary(self, node: Binary, frame: Frame) -> list[Item]:
        op = node.op
        left = self.eval(node.left, frame)
        if op in _LOGIC:
            a = boolean_of(left, f"'{op}'")
            if op == "and" and a is False:
                return [Item(False, "boolean")]
            if op == "or" and a is True:
                return [Item(True, "boolean")]
            if op == "implies" and a is False:
                return [Item(True, "boolean")]
            b = boolean_of(self.eval(node.right, frame), f"'{op}'")
            result = _LOGIC[op](a, b)
            return [] if result is None else [Item(result, "boolean")]
        right = self.eval(node.right, frame)
        if op == "|":
            return _union(left, right)
        if op in ("in", "contains"):
            element, container = (left, right) if op == "in" else (right, left)
            if not element:
                return []
            if len(element) > 1:
                raise ViewError(f"FHIRPath: '{op}' needs a single value at position {node.pos}")
            return [Item(any(equal(element[0], c) is True for c in container), "boolean")]
        if op in ("=", "!=", "~", "!~"):
            result = _equality(left, right, equivalent=op in ("~", "!~"))
            if result is None:
                return []
            return [Item(result if op in ("=", "~") else not result, "boolean")]
        if op == "&":
            text = "".join(str(x[0].value) for x in (left, right) if x)
            return [Item(text, "string")]
        if not left or not right:
            return []
        if len(left) > 1 or len(right) > 1:
            raise ViewError(f"FHIRPath: '{op}' needs single values at position {node.pos}")
        if op in ("<", "<=", ">", ">="):
            order = compare(left[0], right[0])
            return [] if order is None else [Item(_COMPARISONS[op](order, 0), "boolean")]
        return _arithmetic(op, left[0], right[0], node.pos)


def _three_and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _three_or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _three_xor(a: bool | None, b: bool | None) -> bool | None:
    return None if a is None or b is None else a != b


def _three_implies(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is True:
        return True
    return None if a is None or b is None else False


_LOGIC: dict[str, Callable[[bool | None, bool | None], bool | None]] = {
    "and": _three_and,
    "or": _three_or,
    "xor": _three_xor,
    "implies": _three_implies,
}
_COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _union(left: list[Item], right: list[Item]) -> list[Item]:
    out: list[Item] = []
    for item in left + right:
        if all(equal(item, seen) is not True for seen in out):
            out.append(item)
    return out


def _equality(left: list[Item], right: list[Item], equivalent: bool) -> bool | None:
    if not left or not right:
        return (not left and not right) if equivalent else None
    if len(left) != len(right):
        return False
    results = [equal(a, b, equivalent) for a, b in zip(left, right, strict=True)]
    if any(r is False for r in results):
        return False
    return None if any(r is None for r in results) else True


def _instant(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def temporal_order(a: Item, b: Item) -> int | None:
    """Compare two dates/dateTimes: None when their precisions differ (FHIRPath's 'empty')."""
    x, y = str(a.value), str(b.value)
    if x == y:
        return 0
    dx, dy = _instant(x), _instant(y)
    if (
        dx is not None
        and dy is not None
        and "T" in x
        and "T" in y
        and (dx.tzinfo is None) == (dy.tzinfo is None)
        and len(x.split("T")[1]) >= 8
        and len(y.split("T")[1]) >= 8
    ):
        return (dx > dy) - (dx < dy)
    if len(x) != len(y):
        return None
    return (x > y) - (x < y)


def equal(a: Item, b: Item, equivalent: bool = False) -> bool | None:
    x, y = a.value, b.value
    if is_number(x) and is_number(y):
        return to_decimal(x) == to_decimal(y)
    if isinstance(x, str) and isinstance(y, str):
        if equivalent:
            return " ".join(x.lower().split()) == " ".join(y.lower().split())
        if temporal_kind(a) and temporal_kind(b) and x != y:
            order = temporal_order(a, b)
            return None if order is None else order == 0
        return x == y
    if isinstance(x, bool) and isinstance(y, bool):
        return x == y
    if isinstance(x, Mapping) and isinstance(y, Mapping):
        return x == y
    return False


def compare(a: Item, b: Item) -> int | None:
    x, y = a.value, b.value
    if is_number(x) and is_number(y):
        dx, dy = to_decimal(x), to_decimal(y)
        return (dx > dy) - (dx < dy)
    if isinstance(x, str) and isinstance(y, str):
        if temporal_kind(a) and temporal_kind(b):
            return temporal_order(a, b)
        return (x > y) - (x < y)
    raise ViewError(f"FHIRPath: cannot compare {type(x).__name__} with {type(y).__name__}")


def _arithmetic(op: str, a: Item, b: Item, pos: int) -> list[Item]:
    x, y = a.value, b.value
    if op == "+" and isinstance(x, str) and isinstance(y, str):
        return [Item(x + y, "string")]
    if not (is_number(x) and is_number(y)):
        raise ViewError(f"FHIRPath: '{op}' needs numbers at position {pos}")
    integers = isinstance(x, int) and isinstance(y, int)
    dx, dy = to_decimal(x), to_decimal(y)
    try:
        if op == "+":
            result: Decimal = dx + dy
        elif op == "-":
            result = dx - dy
        elif op == "*":
            result = dx * dy
        elif op == "/":
            return [Item(dx / dy, "decimal")]
        elif op == "div":
            result = dx // dy
        elif op == "mod":
            result = dx % dy
        else:
            raise ViewError(f"FHIRPath: unknown operator '{op}' at position {pos}")
    except (DivisionByZero, InvalidOperation, ZeroDivisionError):
        return []
    if integers or op == "div":
        return [Item(int(result), "integer")]
    return [Item(result, "decimal")]
