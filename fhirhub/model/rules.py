"""The checks of a resource's JSON that fhir.resources' R4B models do not make, in one walk
over the parsed JSON, following the committed tables built from the R4 definitions by
``scripts/build_model_tables.py``:

- FHIR's JSON rules (http://hl7.org/fhir/R4/json.html): no ``null`` (except where it pads a
  primitive array beside its ``_name`` array), no empty array, no empty object, no empty string;
- primitives' JSON kinds (a boolean is ``true``, not ``"yes"``) and the codes of required
  bindings (``Patient.gender`` is ``male``, not ``L``);
- ext-1: an extension has a value or extensions, one of them and not both;
- the R4 shape (unknown elements, arrays, required elements, one choice, primitive formats) of
  the types whose R4 and R4B definitions differ (``checkedAgainstR4`` in the table). Such a
  type's subtree is listed in ``Walk.r4_roots``: what the R4B model says below it is not R4.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhirhub.errors import Issue

_DIR = Path(__file__).resolve().parent / "data"
# Types that constrain Quantity rather than specialise it: they have Quantity's properties.
_QUANTITY_PROFILES = ("Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity")
# Regexes not worth running: base64 backtracks on long bodies and xhtml has none.
_UNCHECKED_FORMATS = frozenset({"base64Binary", "xhtml"})
_MINIMUM = {"positiveInt": 1, "unsignedInt": 0}
_JSON_NAMES = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    dict: "an object",
    list: "an array",
}


@dataclass(frozen=True, slots=True)
class _Prop:
    type: str  # a primitive type, or the type (or backbone path) whose properties it has
    kind: str | None  # a primitive's JSON kind: string, boolean, integer or number
    repeats: bool
    choice: str  # "value" for valueString, else ""
    pattern: re.Pattern[str] | None
    codes: frozenset[str] | None  # the codes of a required binding
    binding: str


@dataclass(frozen=True, slots=True)
class _Shape:
    props: dict[str, _Prop]
    required: tuple[str, ...]  # required elements that are not choices
    required_choices: tuple[tuple[str, tuple[str, ...]], ...]  # (choice, its keys)
    r4: bool  # checked against R4 rather than the R4B model


@dataclass(frozen=True, slots=True)
class _Tables:
    shapes: dict[str, _Shape]
    r4_resources: frozenset[str]


@cache
def _tables() -> _Tables:
    raw = json.loads((_DIR / "r4_elements.json").read_text())
    elements: dict[str, dict[str, list[Any]]] = raw["elements"]
    elements["Element"] = {
        "id": ["string", False, False, ""],
        "extension": ["Extension", True, False, ""],
    }
    for name in _QUANTITY_PROFILES:
        elements.setdefault(name, elements["Quantity"])
    primitives: dict[str, dict[str, str]] = raw["primitives"]
    patterns = {
        name: re.compile(p["regex"], re.ASCII)
        for name, p in primitives.items()
        if "regex" in p and name not in _UNCHECKED_FORMATS
    }
    required_codes = json.loads((_DIR / "r4_required_codes.json").read_text())
    value_sets = {url: frozenset(codes) for url, codes in required_codes["valueSets"].items()}
    bindings: dict[str, dict[str, str]] = required_codes["bindings"]
    for name in _QUANTITY_PROFILES:
        bindings.setdefault(name, bindings["Quantity"])
    r4_types = set(raw["checkedAgainstR4"]["dataTypes"]) | set(raw["checkedAgainstR4"]["resources"])
    shapes: dict[str, _Shape] = {}
    for parent, spec in elements.items():
        bound = bindings.get(parent, {})
        props = {}
        for key, (type_, repeats, _required, choice) in spec.items():
            primitive = primitives.get(type_)
            url = bound.get(key, "")
            props[key] = _Prop(
                type_,
                primitive["kind"] if primitive else None,
                repeats,
                choice,
                patterns.get(type_),
                value_sets[url] if url else None,
                url,
            )
        choices: dict[str, list[str]] = {}
        for key, (_t, _r, required, choice) in spec.items():
            if required and choice:
                choices.setdefault(choice, []).append(key)
        shapes[parent] = _Shape(
            props,
            tuple(k for k, (_t, _r, required, choice) in spec.items() if required and not choice),
            tuple((c, tuple(keys)) for c, keys in choices.items()),
            parent.split(".")[0] in r4_types,
        )
    return _Tables(shapes, frozenset(raw["checkedAgainstR4"]["resources"]))


def checked_against_r4(resource_type: str) -> bool:
    """Whether ``resource_type`` is checked against R4's definition instead of R4B's model."""
    return resource_type in _tables().r4_resources


class Walk:
    """The issues of one resource, and the paths below which the R4B model is not the judge."""

    __slots__ = ("_shapes", "issues", "r4_roots")

    def __init__(self, resource: dict[str, Any], path: str) -> None:
        self.issues: list[Issue] = []
        self.r4_roots: list[str] = []
        self._shapes = _tables().shapes
        rtype = resource.get("resourceType")
        self._object(resource, str(rtype), path, False)

    def _object(self, obj: dict[str, Any], type_name: str, path: str, r4: bool) -> None:
        shape = self._shapes.get(type_name)
        if shape is None:
            return
        if not obj:
            self._add(
                "structure", "An element must have content (json.html: no empty objects)", path
            )
            return
        if shape.r4 and not r4:
            r4 = True
            self.r4_roots.append(path)
        props = shape.props
        chosen: dict[str, str] | None = None
        for key, value in obj.items():
            prop = props.get(key)
            if prop is None:
                if key.startswith("_"):
                    self._primitive_extension(obj, key, value, props.get(key[1:]), path, r4)
                elif r4 and key != "resourceType":
                    self._add("structure", "Unknown element", f"{path}.{key}")
                continue
            if value is None:
                self._null(f"{path}.{key}")
                continue
            if r4 and prop.choice:
                chosen = chosen if chosen is not None else {}
                if chosen.setdefault(prop.choice, key) != key:
                    self._add(
                        "structure",
                        f"Only one of {prop.choice}[x] may be present",
                        f"{path}.{prop.choice}[x]",
                    )
            kind = prop.kind
            if isinstance(value, list):
                where = f"{path}.{key}"
                if not prop.repeats:
                    if r4:
                        self._add("structure", "Expected one value, found an array", where)
                    continue
                if not value:
                    self._add("structure", "An array may not be empty (json.html)", where)
                    continue
                pads = obj.get("_" + key) if kind is not None else None
                for i, item in enumerate(value):
                    if item is None:
                        if not _padded(pads, i):
                            self._null(f"{where}[{i}]")
                        continue
                    self._value(item, prop, f"{where}[{i}]", r4)
            elif prop.repeats and r4:
                self._add("structure", "Expected an array", f"{path}.{key}")
            elif (  # the common case, a good string, without a call or a path
                kind == "string"
                and type(value) is str
                and value
                and not value.isspace()
                and (prop.codes is None or value in prop.codes)
                and (not r4 or prop.pattern is None)
            ) or (kind == "boolean" and type(value) is bool):
                continue
            else:
                self._value(value, prop, f"{path}.{key}", r4)
        if r4:
            self._required(obj, shape, path)
        if type_name == "Extension":
            self._ext_1(obj, path)

    def _value(self, value: Any, prop: _Prop, path: str, r4: bool) -> None:
        kind = prop.kind
        if kind is None:
            if isinstance(value, dict):
                if prop.type == "Resource":
                    rtype = str(value.get("resourceType"))
                    self._object(value, rtype, path, r4)
                else:
                    self._object(value, prop.type, path, r4)
            elif r4:
                self._wrong(value, "an object", path)
        elif kind == "string":
            if not isinstance(value, str):
                self._wrong(value, "a string", path)
            elif not value.strip():
                self._add("value", "A string may not be empty or only whitespace", path)
            elif prop.codes is not None and value not in prop.codes:
                self._not_in(value, prop, path)
            elif r4 and prop.pattern is not None and prop.pattern.fullmatch(value) is None:
                self._add("value", f"Not a valid {prop.type}", path)
        elif kind == "boolean":
            if not isinstance(value, bool):
                self._wrong(value, "true or false", path)
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                self._wrong(value, "a whole number", path)
            elif r4 and value < _MINIMUM.get(prop.type, value):
                self._add("value", f"Not a valid {prop.type}", path)
        elif not isinstance(value, int | float) or isinstance(value, bool):
            self._wrong(value, "a number", path)

    def _primitive_extension(
        self, obj: dict[str, Any], key: str, value: Any, prop: _Prop | None, path: str, r4: bool
    ) -> None:
        """``_birthDate``: the id and extensions of the primitive ``birthDate``."""
        where = f"{path}.{key}"
        if prop is None or prop.kind is None:
            if r4:
                self._add("structure", "Unknown element", where)
            return
        if value is None:
            self._null(where)
        elif isinstance(value, list):
            if not prop.repeats:
                if r4:
                    self._add("structure", "Expected one value, found an array", where)
                return
            if not value:
                self._add("structure", "An array may not be empty (json.html)", where)
                return
            values = obj.get(key[1:])
            for i, item in enumerate(value):
                if item is None:
                    if not _padded(values, i):
                        self._null(f"{where}[{i}]")
                elif isinstance(item, dict):
                    self._object(item, "Element", f"{where}[{i}]", r4)
                elif r4:
                    self._wrong(item, "an object", f"{where}[{i}]")
        elif isinstance(value, dict):
            self._object(value, "Element", where, r4)
        elif r4:
            self._wrong(value, "an object", where)

    def _required(self, obj: dict[str, Any], shape: _Shape, path: str) -> None:
        for key in shape.required:
            if key not in obj and "_" + key not in obj:
                self._add("required", "Missing required element", f"{path}.{key}")
        for choice, keys in shape.required_choices:
            if not any(k in obj or "_" + k in obj for k in keys):
                self._add("required", "Missing required element", f"{path}.{choice}[x]")

    def _ext_1(self, obj: dict[str, Any], path: str) -> None:
        has_value = any(k.startswith(("value", "_value")) for k in obj)
        if has_value == ("extension" in obj):
            self._add(
                "invariant",
                "ext-1: an extension must have either extensions or a value[x], not both",
                path,
            )

    def _null(self, path: str) -> None:
        self._add("structure", "null is not allowed here (json.html)", path)

    def _not_in(self, value: str, prop: _Prop, path: str) -> None:
        codes = sorted(prop.codes or ())
        listed = ", ".join(codes) if len(codes) <= 12 else f"{len(codes)} codes"
        self._add(
            "code-invalid",
            f"'{value}' is not a code of {prop.binding} (a required binding: {listed})",
            path,
        )

    def _wrong(self, value: Any, wanted: str, path: str) -> None:
        got = _JSON_NAMES.get(type(value), type(value).__name__)
        if isinstance(value, float) and type(value) is not float:
            got = "a number"
        self._add("value", f"Expected {wanted}, found {got}", path)

    def _add(self, code: str, diagnostics: str, path: str) -> None:
        self.issues.append(Issue(code, diagnostics, (path,)))


def _padded(other: Any, i: int) -> bool:
    """A ``null`` at ``i`` of a primitive array pads it beside its ``_name`` array (or the
    reverse): allowed where the other array has something at ``i``."""
    return isinstance(other, list) and i < len(other) and other[i] is not None
