"""Structural validation of a resource against its R4 definition, in one walk over the parsed
JSON, following the committed tables built from the official R4 StructureDefinitions by
``scripts/build_model_tables.py`` (docs/adr/0008):

- the R4 shape: unknown elements, arrays where an element repeats and single values where it
  does not, required elements, one type of a choice, a contained resource's own type;
- primitives: their JSON kinds (a boolean is ``true``, not ``"yes"``), their formats (the R4
  regexes; a date that is no calendar date; integers of 32 bits, positiveInt at least 1), and
  the codes of required bindings (``Patient.gender`` is ``male``, not ``L``);
- FHIR's JSON rules (http://hl7.org/fhir/R4/json.html): no ``null`` (except where it pads a
  primitive array beside its ``_name`` array), no empty array, no empty object, no empty string;
- ext-1: an extension has a value or extensions, one of them and not both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from fhirhub.errors import Issue
from fhirhub.model.resource_types import is_resource_type

_DIR = Path(__file__).resolve().parent / "data"
# Types that constrain Quantity rather than specialise it: they have Quantity's properties.
_QUANTITY_PROFILES = ("Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity")
# Regexes not worth running: base64 backtracks on long bodies and xhtml has none.
_UNCHECKED_FORMATS = frozenset({"base64Binary", "xhtml"})
_MINIMUM = {"positiveInt": 1, "unsignedInt": 0}
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # FHIR's integer is 32 bits
_DATED = frozenset({"date", "dateTime", "instant"})
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


@cache
def _shapes() -> dict[str, _Shape]:
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
        )
    return shapes


def _real_date(value: str) -> bool:
    """Whether the calendar date a date, dateTime or instant starts with exists (the format
    allows 2025-02-30)."""
    if len(value) < 10:
        return True  # a year, or a year and month: the format said enough
    try:
        date(int(value[:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return False
    return True


class Walk:
    """The issues of one resource against its R4 definition."""

    __slots__ = ("_shapes", "issues")

    def __init__(self, resource: dict[str, Any], path: str) -> None:
        self.issues: list[Issue] = []
        self._shapes = _shapes()
        rtype = resource.get("resourceType")
        self._object(resource, str(rtype), path)

    def _object(self, obj: dict[str, Any], type_name: str, path: str) -> None:
        shape = self._shapes.get(type_name)
        if shape is None:
            return
        if not obj:
            self._add(
                "structure", "An element must have content (json.html: no empty objects)", path
            )
            return
        props = shape.props
        chosen: dict[str, str] | None = None
        for key, value in obj.items():
            prop = props.get(key)
            if prop is None:
                if key.startswith("_"):
                    self._primitive_extension(obj, key, value, props.get(key[1:]), path)
                elif key != "resourceType":
                    self._add("structure", "Unknown element", f"{path}.{key}")
                continue
            if value is None:
                self._null(f"{path}.{key}")
                continue
            if prop.choice:
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
                    self._value(item, prop, f"{where}[{i}]")
            elif prop.repeats:
                self._add("structure", "Expected an array", f"{path}.{key}")
            elif (  # the common case, a good string, without a call or a path
                kind == "string"
                and type(value) is str
                and prop.pattern is None
                and value
                and not value.isspace()
                and (prop.codes is None or value in prop.codes)
            ) or (kind == "boolean" and type(value) is bool):
                continue
            else:
                self._value(value, prop, f"{path}.{key}")
        self._required(obj, shape, path)
        if type_name == "Extension":
            self._ext_1(obj, path)

    def _value(self, value: Any, prop: _Prop, path: str) -> None:
        kind = prop.kind
        if kind is None:
            if not isinstance(value, dict):
                self._wrong(value, "an object", path)
            elif prop.type == "Resource":
                self._resource(value, path)
            else:
                self._object(value, prop.type, path)
        elif kind == "string":
            if not isinstance(value, str):
                self._wrong(value, "a string", path)
            elif not value.strip():
                self._add("value", "A string may not be empty or only whitespace", path)
            elif prop.codes is not None and value not in prop.codes:
                self._not_in(value, prop, path)
            elif prop.pattern is not None and (
                prop.pattern.fullmatch(value) is None
                or (prop.type in _DATED and not _real_date(value))
            ):
                self._add("value", f"Not a valid {prop.type}", path)
        elif kind == "boolean":
            if not isinstance(value, bool):
                self._wrong(value, "true or false", path)
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                self._wrong(value, "a whole number", path)
            elif not _MINIMUM.get(prop.type, _INT_MIN) <= value <= _INT_MAX:
                self._add("value", f"Not a valid {prop.type} (out of range)", path)
        elif not isinstance(value, int | float) or isinstance(value, bool):
            self._wrong(value, "a number", path)

    def _resource(self, value: dict[str, Any], path: str) -> None:
        """A resource inside another (``contained``, ``Bundle.entry.resource``, a Parameters'
        ``resource``): its own type's definition, which it must name."""
        rtype = value.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            self._add("required", "resourceType is missing", f"{path}.resourceType")
        elif not is_resource_type(rtype):
            self._add(
                "not-supported",
                f"Unknown resource type '{rtype}' (not a FHIR R4 resource)",
                f"{path}.resourceType",
            )
        else:
            self._object(value, rtype, path)

    def _primitive_extension(
        self, obj: dict[str, Any], key: str, value: Any, prop: _Prop | None, path: str
    ) -> None:
        """``_birthDate``: the id and extensions of the primitive ``birthDate``."""
        where = f"{path}.{key}"
        if prop is None or prop.kind is None:
            self._add("structure", "Unknown element", where)
            return
        if value is None:
            self._null(where)
        elif isinstance(value, list):
            if not prop.repeats:
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
                    self._object(item, "Element", f"{where}[{i}]")
                else:
                    self._wrong(item, "an object", f"{where}[{i}]")
        elif isinstance(value, dict):
            self._object(value, "Element", where)
        else:
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
