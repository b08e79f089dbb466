"""The FHIRPath functions of the subset, one small function each.

Each takes the evaluator, the frame the call is made in, its input collection and its unevaluated
arguments (criteria such as ``where(...)`` are evaluated per item with ``$this`` set).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from fhirhub.views.boundary import boundary
from fhirhub.views.errors import ViewError
from fhirhub.views.fhirpath_ast import Call, Node, type_name_of
from fhirhub.views.fhirpath_types import (
    STRING_TYPES,
    SUPERTYPES,
    Evaluator,
    Frame,
    Item,
    is_number,
    temporal_kind,
    type_of,
)

Function = Callable[[Evaluator, Frame, list[Item], Call], list[Item]]
_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def boolean_of(items: list[Item], what: str) -> bool | None:
    """A collection as a boolean: empty is None, one boolean itself, one other value true."""
    if not items:
        return None
    if len(items) > 1:
        raise ViewError(f"FHIRPath: {what} needs a single value, got {len(items)}")
    value = items[0].value
    return value if isinstance(value, bool) else True


def _bool(value: bool | None) -> list[Item]:
    return [] if value is None else [Item(value, "boolean")]


def _per_item(ev: Evaluator, items: list[Item], node: Node) -> list[list[Item]]:
    return [ev.eval(node, Frame([item], [item], i)) for i, item in enumerate(items)]


def _string_arg(ev: Evaluator, frame: Frame, node: Node, name: str) -> str | None:
    values = ev.eval(node, frame)
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0].value, str):
        raise ViewError(f"FHIRPath: {name}() takes a single string argument")
    return str(values[0].value)


def _int_arg(ev: Evaluator, frame: Frame, node: Node, name: str) -> int | None:
    values = ev.eval(node, frame)
    if not values:
        return None
    value = values[0].value
    if len(values) > 1 or not isinstance(value, int) or isinstance(value, bool):
        raise ViewError(f"FHIRPath: {name}() takes a single integer argument")
    return value


def _single_string(items: list[Item], name: str) -> str | None:
    if not items:
        return None
    if len(items) > 1:
        raise ViewError(f"FHIRPath: {name}() needs a single input, got {len(items)}")
    value = items[0].value
    if not isinstance(value, str):
        raise ViewError(f"FHIRPath: {name}() needs a string input")
    return value


def type_matches(item: Item, name: str) -> bool:
    """Whether ``item`` is of FHIR type ``name`` (or a specialisation of it)."""
    wanted = name.lower()
    kind = type_of(item)
    while kind is not None:
        if kind.lower() == wanted:
            return True
        kind = SUPERTYPES.get(kind)
    if item.type is None and isinstance(item.value, str):
        if name in STRING_TYPES:
            return True
        return temporal_kind(item) == name
    return False


def _type_arg(call: Call) -> str:
    name = type_name_of(call.args[0]) if call.args else None
    assert name is not None  # parse() checked it
    return name


def fn_where(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    results = _per_item(ev, items, call.args[0])
    return [
        item for item, r in zip(items, results, strict=True) if boolean_of(r, "where()") is True
    ]


def fn_select(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    return [x for r in _per_item(ev, items, call.args[0]) for x in r]


def fn_exists(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    if call.args:
        items = fn_where(ev, frame, items, call)
    return _bool(bool(items))


def fn_all(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    results = _per_item(ev, items, call.args[0])
    return _bool(all(boolean_of(r, "all()") is True for r in results))


def _bools(items: list[Item], name: str) -> list[bool]:
    if any(not isinstance(i.value, bool) for i in items):
        raise ViewError(f"FHIRPath: {name}() needs booleans")
    return [bool(i.value) for i in items]


def fn_iif(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    if boolean_of(ev.eval(call.args[0], frame), "iif()") is True:
        return ev.eval(call.args[1], frame)
    return ev.eval(call.args[2], frame) if len(call.args) > 2 else []


def fn_single(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    if len(items) > 1:
        raise ViewError(f"FHIRPath: single() got {len(items)} values")
    return items


def fn_distinct(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    out: list[Item] = []
    for item in items:
        if all(item.value != seen.value for seen in out):
            out.append(item)
    return out


def fn_not(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    value = boolean_of(items, "not()")
    return _bool(None if value is None else not value)


def fn_join(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    separator = _string_arg(ev, frame, call.args[0], "join") if call.args else ""
    if any(not isinstance(i.value, str) for i in items):
        raise ViewError("FHIRPath: join() needs strings")
    return [Item((separator or "").join(i.value for i in items), "string")]


def fn_of_type(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    name = _type_arg(call)
    return [item for item in items if type_matches(item, name)]


def fn_is(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    if not items:
        return []
    if len(items) > 1:
        raise ViewError("FHIRPath: is() needs a single value")
    return _bool(type_matches(items[0], _type_arg(call)))


def fn_as(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    if len(items) > 1:
        raise ViewError("FHIRPath: as() needs a single value")
    return fn_of_type(ev, frame, items, call)


def fn_extension(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    url = _string_arg(ev, frame, call.args[0], "extension")
    out: list[Item] = []
    for item in items:
        if isinstance(item.value, dict):
            for ext in item.value.get("extension") or []:
                if isinstance(ext, dict) and ext.get("url") == url:
                    out.append(Item(ext, "Extension"))
    return out


def fn_get_resource_key(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    out: list[Item] = []
    for item in items:
        value = item.value
        if (
            isinstance(value, dict)
            and isinstance(value.get("id"), str)
            and value.get("resourceType")
        ):
            out.append(Item(f"{value['resourceType']}/{value['id']}", "string"))
    return out


def fn_get_reference_key(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    wanted = _type_arg(call) if call.args else None
    out: list[Item] = []
    for item in items:
        reference = item.value.get("reference") if isinstance(item.value, dict) else None
        match = _REFERENCE.search(reference) if isinstance(reference, str) else None
        if match is not None and (wanted is None or match[1] == wanted):
            out.append(Item(f"{match[1]}/{match[2]}", "string"))
    return out


def _boundary(high: bool) -> Function:
    def fn(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
        precision = _int_arg(ev, frame, call.args[0], call.name) if call.args else None
        if len(items) > 1:
            raise ViewError(f"FHIRPath: {call.name}() needs a single value, got {len(items)}")
        result = boundary(items[0], high, precision) if items else None
        return [result] if result is not None else []

    return fn


def fn_has_value(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    return _bool(len(items) == 1 and not isinstance(items[0].value, dict | list))


def fn_to_string(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    if len(items) != 1 or isinstance(items[0].value, dict | list):
        return []
    value = items[0].value
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return [Item(text, "string")]


def fn_to_integer(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    if len(items) != 1:
        return []
    value = items[0].value
    if isinstance(value, bool):
        return [Item(int(value), "integer")]
    if isinstance(value, int):
        return [Item(value, "integer")]
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value):
        return [Item(int(value), "integer")]
    return []


def fn_to_decimal(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
    if len(items) != 1:
        return []
    value = items[0].value
    if is_number(value) or (isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d+)?", value)):
        try:
            return [Item(Decimal(str(value)), "decimal")]
        except InvalidOperation:
            return []
    return []


def _string_fn(
    body: Callable[[str, list[Any]], Any], kinds: tuple[str, ...], result_type: str
) -> Function:
    def fn(ev: Evaluator, frame: Frame, items: list[Item], call: Call) -> list[Item]:
        text = _single_string(items, call.name)
        args: list[Any] = []
        for node, kind in zip(call.args, kinds, strict=False):
            arg = (
                _int_arg(ev, frame, node, call.name)
                if kind == "int"
                else _string_arg(ev, frame, node, call.name)
            )
            if arg is None:
                return []
            args.append(arg)
        if text is None:
            return []
        result = body(text, args)
        if result is None:
            return []
        if isinstance(result, list):
            return [Item(x, result_type) for x in result]
        return [Item(result, result_type)]

    return fn


def _substring(text: str, args: list[Any]) -> str | None:
    start = args[0]
    if start < 0 or start >= len(text):
        return None
    return text[start : start + args[1]] if len(args) > 1 else text[start:]


# a group with a quantifier inside that is itself repeated: (a+)+, (a|aa)*, ... (catastrophic
# backtracking in Python's re, which has no timeout)
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")


def _matches(text: str, args: list[Any]) -> bool:
    if len(args[0]) > 500 or _NESTED_QUANTIFIER.search(args[0]):
        raise ViewError(
            "FHIRPath: matches() refuses a pattern over 500 characters or a repeated group "
            "with a quantifier inside (it could run for ever)"
        )
    try:
        return re.search(args[0], text) is not None
    except re.error as exc:
        raise ViewError(f"FHIRPath: matches() has an invalid pattern: {exc}") from exc


FUNCTION_IMPLEMENTATIONS: dict[str, Function] = {
    "where": fn_where,
    "select": fn_select,
    "exists": fn_exists,
    "all": fn_all,
    "empty": lambda ev, frame, items, call: _bool(not items),
    "first": lambda ev, frame, items, call: items[:1],
    "last": lambda ev, frame, items, call: items[-1:],
    "tail": lambda ev, frame, items, call: items[1:],
    "skip": lambda ev, frame, items, call: items[
        max(_int_arg(ev, frame, call.args[0], "skip") or 0, 0) :
    ],
    "take": lambda ev, frame, items, call: items[
        : max(_int_arg(ev, frame, call.args[0], "take") or 0, 0)
    ],
    "single": fn_single,
    "count": lambda ev, frame, items, call: [Item(len(items), "integer")],
    "distinct": fn_distinct,
    "not": fn_not,
    "allTrue": lambda ev, frame, items, call: _bool(all(_bools(items, "allTrue"))),
    "anyTrue": lambda ev, frame, items, call: _bool(any(_bools(items, "anyTrue"))),
    "allFalse": lambda ev, frame, items, call: _bool(not any(_bools(items, "allFalse"))),
    "anyFalse": lambda ev, frame, items, call: _bool(not all(_bools(items, "anyFalse"))),
    "iif": fn_iif,
    "join": fn_join,
    "ofType": fn_of_type,
    "is": fn_is,
    "as": fn_as,
    "extension": fn_extension,
    "getResourceKey": fn_get_resource_key,
    "getReferenceKey": fn_get_reference_key,
    "lowBoundary": _boundary(high=False),
    "highBoundary": _boundary(high=True),
    "hasValue": fn_has_value,
    "toString": fn_to_string,
    "toInteger": fn_to_integer,
    "toDecimal": fn_to_decimal,
    "startsWith": _string_fn(lambda s, a: s.startswith(a[0]), ("str",), "boolean"),
    "endsWith": _string_fn(lambda s, a: s.endswith(a[0]), ("str",), "boolean"),
    "contains": _string_fn(lambda s, a: a[0] in s, ("str",), "boolean"),
    "substring": _string_fn(_substring, ("int", "int"), "string"),
    "indexOf": _string_fn(lambda s, a: s.find(a[0]), ("str",), "integer"),
    "lower": _string_fn(lambda s, a: s.lower(), (), "string"),
    "upper": _string_fn(lambda s, a: s.upper(), (), "string"),
    "length": _string_fn(lambda s, a: len(s), (), "integer"),
    "trim": _string_fn(lambda s, a: s.strip(), (), "string"),
    "replace": _string_fn(lambda s, a: s.replace(a[0], a[1]), ("str", "str"), "string"),
    "matches": _string_fn(_matches, ("str",), "boolean"),
    "split": _string_fn(lambda s, a: s.split(a[0]) if a[0] else list(s), ("str",), "string"),
}
