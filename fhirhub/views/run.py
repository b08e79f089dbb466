"""Run a ViewDefinition over resources in memory: https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html#processing-algorithm-model

Each select yields rows for its focus: its own columns, crossed with the rows of each nested
select, crossed with the rows of its ``unionAll`` branches one after the other. ``forEach`` runs
the select once per element, ``forEachOrNull`` also once with nulls when there is none,
``repeat`` once per element reached by following its paths to any depth. ``%rowIndex`` is the
element's position in the nearest iteration (0 outside any).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from itertools import product
from typing import Any

from fhirhub.views.definition import Column, Select, View, parse_view
from fhirhub.views.errors import ViewError
from fhirhub.views.fhirpath_eval import evaluate_on
from fhirhub.views.fhirpath_types import Env, Item

Row = dict[str, Any]


def run_view(
    view: View | Mapping[str, Any], resources: Iterable[Mapping[str, Any]]
) -> Iterator[Row]:
    """The rows of ``view`` over ``resources`` (others than its resource type are skipped).

    Each row maps the view's column names, in order, to JSON values (a list for a collection
    column, None for no value).
    """
    checked = view if isinstance(view, View) else parse_view(view)  # a bad view fails here, at once
    return _iter_rows(checked, resources)


def _iter_rows(view: View, resources: Iterable[Mapping[str, Any]]) -> Iterator[Row]:
    names = view.column_names
    for resource in resources:
        if not isinstance(resource, Mapping) or resource.get("resourceType") != view.resource:
            continue
        root = Item(resource, view.resource)
        env = Env(view.constants, root, 0)
        if not _passes(view, root, env):
            continue
        for row in _rows(view.root, root, env):
            yield {name: row.get(name) for name in names}


def _passes(view: View, root: Item, env: Env) -> bool:
    for where in view.where:
        result = evaluate_on(where.expr, root, env)
        if not result:
            return False
        if len(result) > 1 or not isinstance(result[0].value, bool):
            raise ViewError(
                f"where path {where.path!r} does not give a boolean", f"{where.location}.path"
            )
        if not result[0].value:
            return False
    return True


def _foci(select: Select, node: Item, env: Env) -> list[Item]:
    if select.iterate in ("forEach", "forEachOrNull"):
        return evaluate_on(select.paths[0], node, env)
    found: list[Item] = []

    def descend(item: Item) -> None:
        for path in select.paths:
            for child in evaluate_on(path, item, env):
                found.append(child)
                descend(child)

    descend(node)
    return found


def _rows(select: Select, node: Item, env: Env) -> list[Row]:
    if select.iterate is None:
        return _focus_rows(select, node, env)
    foci = _foci(select, node, env)
    if not foci and select.iterate == "forEachOrNull":
        # one row of nulls; the select's own columns see an empty focus (so %rowIndex is 0)
        row: Row = dict.fromkeys(select.column_names)
        null_env = replace(env, row_index=0)
        row.update({c.name: _value(c, None, null_env) for c in select.columns})
        return [row]
    rows: list[Row] = []
    for index, focus in enumerate(foci):
        rows.extend(_focus_rows(select, focus, replace(env, row_index=index)))
    return rows


def _focus_rows(select: Select, focus: Item, env: Env) -> list[Row]:
    parts: list[list[Row]] = [[{c.name: _value(c, focus, env) for c in select.columns}]]
    parts.extend(_rows(sub, focus, env) for sub in select.selects)
    if select.union_all:
        parts.append([row for branch in select.union_all for row in _rows(branch, focus, env)])
    rows: list[Row] = []
    for combination in product(*parts):
        merged: Row = {}
        for part in combination:
            merged.update(part)
        rows.append(merged)
    return rows


def _value(column: Column, focus: Item | None, env: Env) -> Any:
    items = evaluate_on(column.expr, focus, env)
    if column.collection:
        return [_json(i.value) for i in items]
    if len(items) > 1:
        raise ViewError(
            f"column {column.name!r} ({column.path}) gives {len(items)} values; "
            "set collection: true to keep them all",
            f"{column.location}.path",
        )
    return _json(items[0].value) if items else None


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent == 0
            else float(value)
        )
    return value
