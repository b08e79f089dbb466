"""JSON kinds of primitive values: a boolean is ``true``, not ``"yes"``; an integer is a number.

fhir.resources' models coerce such values leniently; FHIR's JSON format does not
(http://hl7.org/fhir/R4/json.html#primitive). The walk follows the committed element table built
from the R4 StructureDefinitions by ``scripts/build_model_tables.py``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fhirhub.errors import Issue

_DATA = Path(__file__).resolve().parent / "data" / "r4_elements.json"
# Types that constrain Quantity rather than specialise it: they have Quantity's properties.
_QUANTITY_PROFILES = ("Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity")
_JSON_NAMES = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    dict: "an object",
    list: "an array",
}


@cache
def _elements() -> dict[str, dict[str, list[Any]]]:
    table: dict[str, dict[str, list[Any]]] = json.loads(_DATA.read_text())["elements"]
    for name in _QUANTITY_PROFILES:
        table.setdefault(name, table["Quantity"])
    return table


def primitive_issues(resource: dict[str, Any], path: str) -> list[Issue]:
    """Every primitive value of ``resource`` whose JSON kind is wrong, or that is empty."""
    issues: list[Issue] = []
    _walk(resource, str(resource.get("resourceType")), path, issues)
    return issues


def _walk(obj: Any, type_name: str, path: str, issues: list[Issue]) -> None:
    props = _elements().get(type_name)
    if props is None or not isinstance(obj, dict):
        return
    for key, value in obj.items():
        spec = props.get(key)
        if spec is None:  # resourceType, _primitive extensions, or unknown (the model says so)
            continue
        kind, repeats = spec
        where = f"{path}.{key}"
        if repeats and isinstance(value, list):
            for i, item in enumerate(value):
                _check(item, kind, f"{where}[{i}]", issues)
        else:
            _check(value, kind, where, issues)


def _check(value: Any, kind: str, path: str, issues: list[Issue]) -> None:
    if value is None:
        return
    if kind == "string":
        if not isinstance(value, str):
            issues.append(_wrong(value, "a string", path))
        elif not value.strip():
            issues.append(Issue("value", "A string may not be empty or only whitespace", (path,)))
    elif kind == "boolean":
        if not isinstance(value, bool):
            issues.append(_wrong(value, "true or false", path))
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            issues.append(_wrong(value, "a whole number", path))
    elif kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            issues.append(_wrong(value, "a number", path))
    elif kind == "Resource":
        if isinstance(value, dict):
            _walk(value, str(value.get("resourceType")), path, issues)
    else:
        _walk(value, kind, path, issues)


def _wrong(value: Any, wanted: str, path: str) -> Issue:
    got = _JSON_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, float) and type(value) is not float:
        got = "a number"
    return Issue("value", f"Expected {wanted}, found {got}", (path,))
