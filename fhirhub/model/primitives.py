"""JSON kinds of primitive values (a boolean is ``true``, not ``"yes"``; an integer is a number),
and the codes of required bindings (``Patient.gender`` is ``male``, not ``L``).

fhir.resources' models coerce such values leniently and check no bindings; FHIR does both
(http://hl7.org/fhir/R4/json.html#primitive, terminologies.html#required). The walk follows the
committed tables built from the R4 definitions by ``scripts/build_model_tables.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhirhub.errors import Issue

_DATA = Path(__file__).resolve().parent / "data" / "r4_elements.json"
_REQUIRED = Path(__file__).resolve().parent / "data" / "r4_required_codes.json"
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


@dataclass(frozen=True)
class _Binding:
    url: str
    codes: frozenset[str]


@cache
def _bindings() -> dict[str, dict[str, _Binding]]:
    raw = json.loads(_REQUIRED.read_text())
    sets = {url: frozenset(codes) for url, codes in raw["valueSets"].items()}
    table = {
        parent: {key: _Binding(url, sets[url]) for key, url in props.items()}
        for parent, props in raw["bindings"].items()
    }
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
    bound = _bindings().get(type_name, {})
    for key, value in obj.items():
        spec = props.get(key)
        if spec is None:  # resourceType, _primitive extensions, or unknown (the model says so)
            continue
        kind, repeats = spec
        where = f"{path}.{key}"
        binding = bound.get(key)
        if repeats and isinstance(value, list):
            for i, item in enumerate(value):
                _check(item, kind, f"{where}[{i}]", issues, binding)
        else:
            _check(value, kind, where, issues, binding)


def _check(
    value: Any, kind: str, path: str, issues: list[Issue], binding: _Binding | None = None
) -> None:
    if value is None:
        return
    if kind == "string":
        if not isinstance(value, str):
            issues.append(_wrong(value, "a string", path))
        elif not value.strip():
            issues.append(Issue("value", "A string may not be empty or only whitespace", (path,)))
        elif binding is not None and value not in binding.codes:
            issues.append(_not_in(value, binding, path))
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


def _not_in(value: str, binding: _Binding, path: str) -> Issue:
    codes = sorted(binding.codes)
    listed = ", ".join(codes) if len(codes) <= 12 else f"{len(codes)} codes"
    return Issue(
        "code-invalid",
        f"'{value}' is not a code of {binding.url} (a required binding: {listed})",
        (path,),
    )


def _wrong(value: Any, wanted: str, path: str) -> Issue:
    got = _JSON_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, float) and type(value) is not float:
        got = "a number"
    return Issue("value", f"Expected {wanted}, found {got}", (path,))
