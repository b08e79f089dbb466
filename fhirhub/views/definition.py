"""A ViewDefinition, checked and parsed: https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html

:func:`parse_view` turns the JSON into typed :class:`View` / :class:`Select` / :class:`Column`
nodes with every FHIRPath already parsed, or raises a :class:`ViewError` saying what is wrong and
where (``ViewDefinition.select[0].unionAll[1]``). Both the in-memory runner and the SQL
compiler start from these nodes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhirhub.model.resource_types import is_resource_type
from fhirhub.views.errors import ViewError
from fhirhub.views.fhirpath import parse
from fhirhub.views.fhirpath_ast import Node
from fhirhub.views.fhirpath_types import CHOICE_SUFFIXES, PRIMITIVE_TYPES, Item

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_CONSTANT_TYPES = {
    f"value{t[0].upper()}{t[1:]}": t for t in PRIMITIVE_TYPES if t not in ("xhtml", "integer64")
}


@dataclass(frozen=True)
class Column:
    name: str
    path: str
    expr: Node
    collection: bool
    type: str | None
    location: str  # ViewDefinition.select[0].column[1]


@dataclass(frozen=True)
class Select:
    columns: tuple[Column, ...]
    selects: tuple[Select, ...]
    union_all: tuple[Select, ...]
    iterate: str | None  # "forEach", "forEachOrNull", "repeat" or None
    paths: tuple[Node, ...]  # the forEach/forEachOrNull path, or the repeat paths
    location: str

    @property
    def column_names(self) -> tuple[str, ...]:
        """The names of the columns this select yields, in output order."""
        return tuple(c.name for c in self.all_columns)

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """The columns this select yields, in output order (of a unionAll, its first branch's)."""
        found = list(self.columns)
        for sub in self.selects:
            found.extend(sub.all_columns)
        if self.union_all:
            found.extend(self.union_all[0].all_columns)
        return tuple(found)


@dataclass(frozen=True)
class Where:
    path: str
    expr: Node
    location: str


@dataclass(frozen=True)
class View:
    resource: str
    name: str | None
    constants: Mapping[str, list[Item]]
    where: tuple[Where, ...]
    root: Select

    @property
    def column_names(self) -> tuple[str, ...]:
        return self.root.column_names


def parse_view(data: Any) -> View:
    """Check ``data`` (a ViewDefinition as JSON) and parse it into a :class:`View`."""
    where = "ViewDefinition"
    if not isinstance(data, Mapping):
        raise ViewError("a ViewDefinition must be a JSON object", where, "structure")
    if data.get("resourceType", "ViewDefinition") != "ViewDefinition":
        raise ViewError("resourceType must be ViewDefinition", f"{where}.resourceType", "structure")
    resource = data.get("resource")
    if not isinstance(resource, str) or not _NAME.fullmatch(resource):
        raise ViewError("resource must name a FHIR resource type", f"{where}.resource", "required")
    if not is_resource_type(resource):
        raise ViewError(f"{resource!r} is not a FHIR R4 resource type", f"{where}.resource")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise ViewError("name must be a string", f"{where}.name", "structure")
    constants = _constants(data.get("constant", []))
    select = data.get("select")
    if not isinstance(select, list) or not select:
        raise ViewError("select must be a non-empty list", f"{where}.select", "required")
    root = Select(
        columns=(),
        selects=tuple(_select(s, f"{where}.select[{i}]", constants) for i, s in enumerate(select)),
        union_all=(),
        iterate=None,
        paths=(),
        location=where,
    )
    seen: set[str] = set()
    for column_name in root.column_names:
        if column_name in seen:
            raise ViewError(
                f"column name {column_name!r} is used twice", f"{where}.select", "invalid"
            )
        seen.add(column_name)
    filters = data.get("where", [])
    if not isinstance(filters, list):
        raise ViewError("where must be a list", f"{where}.where", "structure")
    wheres = []
    for i, entry in enumerate(filters):
        location = f"{where}.where[{i}]"
        if not isinstance(entry, Mapping) or "path" not in entry:
            raise ViewError("a where entry needs a path", location, "structure")
        expr = _path(entry["path"], f"{location}.path", constants)
        wheres.append(Where(str(entry["path"]), expr, location))
    return View(resource, name, constants, tuple(wheres), root)


def _path(text: Any, location: str, constants: Mapping[str, list[Item]]) -> Node:
    if not isinstance(text, str):
        raise ViewError("a path must be a FHIRPath string", location, "structure")
    try:
        return parse(text, constants.keys())
    except ViewError as exc:
        raise exc.at(location) from None


def _constants(data: Any) -> dict[str, list[Item]]:
    if not isinstance(data, list):
        raise ViewError("constant must be a list", "ViewDefinition.constant", "structure")
    constants: dict[str, list[Item]] = {}
    for i, entry in enumerate(data):
        location = f"ViewDefinition.constant[{i}]"
        if not isinstance(entry, Mapping):
            raise ViewError("a constant must be an object", location, "structure")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ViewError("a constant needs a name (letters, digits, _)", f"{location}.name")
        if name in constants:
            raise ViewError(f"constant {name!r} is defined twice", f"{location}.name")
        values = [key for key in entry if key.startswith("value")]
        if len(values) != 1 or values[0] not in _CONSTANT_TYPES:
            raise ViewError(
                f"constant {name!r} needs exactly one value[x] of a primitive type",
                location,
                "required",
            )
        value = entry[values[0]]
        if value is None or isinstance(value, list | Mapping):
            raise ViewError(f"constant {name!r} has no usable value", f"{location}.{values[0]}")
        constants[name] = [Item(value, CHOICE_SUFFIXES[values[0][len("value") :]])]
    return constants


def _select(data: Any, location: str, constants: Mapping[str, list[Item]]) -> Select:
    if not isinstance(data, Mapping):
        raise ViewError("a select must be an object", location, "structure")
    iterate: str | None = None
    paths: tuple[Node, ...] = ()
    present = [key for key in ("forEach", "forEachOrNull", "repeat") if key in data]
    if len(present) > 1:
        raise ViewError(
            f"a select may have only one of {', '.join(present)}", location, "structure"
        )
    if present:
        iterate = present[0]
        if iterate == "repeat":
            repeat = data["repeat"]
            if not isinstance(repeat, list) or not repeat:
                raise ViewError(
                    "repeat must be a non-empty list of paths", f"{location}.repeat", "structure"
                )
            paths = tuple(
                _path(p, f"{location}.repeat[{i}]", constants) for i, p in enumerate(repeat)
            )
        else:
            paths = (_path(data[iterate], f"{location}.{iterate}", constants),)
    columns = tuple(
        _column(c, f"{location}.column[{i}]", constants)
        for i, c in enumerate(_list(data, "column", location))
    )
    selects = tuple(
        _select(s, f"{location}.select[{i}]", constants)
        for i, s in enumerate(_list(data, "select", location))
    )
    union_all = tuple(
        _select(s, f"{location}.unionAll[{i}]", constants)
        for i, s in enumerate(_list(data, "unionAll", location))
    )
    for i, branch in enumerate(union_all[1:], start=1):
        if branch.column_names != union_all[0].column_names:
            raise ViewError(
                f"unionAll branches must have the same columns in the same order: "
                f"{list(union_all[0].column_names)} and {list(branch.column_names)}",
                f"{location}.unionAll[{i}]",
                "structure",
            )
    if not columns and not selects and not union_all:
        raise ViewError("a select needs a column, a select or a unionAll", location, "required")
    return Select(columns, selects, union_all, iterate, paths, location)


def _list(data: Mapping[str, Any], key: str, location: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ViewError(f"{key} must be a list", f"{location}.{key}", "structure")
    return value


def _column(data: Any, location: str, constants: Mapping[str, list[Item]]) -> Column:
    if not isinstance(data, Mapping):
        raise ViewError("a column must be an object", location, "structure")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ViewError(
            "a column needs a name (a letter, then letters, digits, _)", f"{location}.name"
        )
    collection = data.get("collection", False)
    if not isinstance(collection, bool):
        raise ViewError("collection must be true or false", f"{location}.collection", "structure")
    kind = data.get("type")
    if kind is not None and not isinstance(kind, str):
        raise ViewError("type must be a string", f"{location}.type", "structure")
    path = data.get("path")
    expr = _path(path, f"{location}.path", constants)
    return Column(name, str(path), expr, collection, kind, location)
