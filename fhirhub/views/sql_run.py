"""Run a ViewDefinition over the store: compiled to SQL when it can be, else in memory.

:func:`stream_rows` reads only current, non-deleted resources of the view's type (optionally of
one patient's compartment, or changed since an instant). A view the compiler takes
(``sql_compile``) is one query whose rows stream from a server-side cursor; any other is run by
the in-memory runner (``run``) over the resources streamed the same way. Either way memory stays
bounded by the batch size, not by the number of rows.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, text

from fhirhub.model.json import loads
from fhirhub.search import registry
from fhirhub.views.definition import View
from fhirhub.views.errors import ViewError
from fhirhub.views.fhirpath_eval import temporal_order
from fhirhub.views.fhirpath_types import Item
from fhirhub.views.run import Row, run_view
from fhirhub.views.sql_compile import Compiled, Uncompilable, compile_view
from fhirhub.views.sql_dialect import REFERENCE_PATTERN, dialect_for

BATCH = 1000
_REFERENCE = re.compile(REFERENCE_PATTERN)


@dataclass(frozen=True)
class Scope:
    """Which resources a run reads: all current ones, or one patient's, or changed since."""

    patient: str | None = None  # a Patient id
    since_us: int | None = None  # last_updated at or after (microseconds)
    pks: tuple[int, int] | None = None  # resources.pk from .. to (inclusive)


@dataclass(frozen=True)
class Plan:
    """How a view runs here: ``compiled`` SQL, or in memory (``reason`` says why)."""

    compiled: Compiled | None
    reason: str | None


def plan(view: View, dialect_name: str, filters: list[str] | None = None) -> Plan:
    try:
        return Plan(compile_view(view, dialect_for(dialect_name), filters), None)
    except Uncompilable as exc:
        return Plan(None, str(exc))


def _reference_key(reference: Any, wanted: Any) -> str | None:
    if not isinstance(reference, str):
        return None
    match = _REFERENCE.search(reference)
    if match is None or (wanted is not None and match[1] != wanted):
        return None
    return f"{match[1]}/{match[2]}"


def _temporal_order(a: Any, b: Any) -> int | None:
    if not isinstance(a, str) or not isinstance(b, str):
        return None
    return temporal_order(Item(a, "dateTime"), Item(b, "dateTime"))


def prepare(conn: Connection) -> None:
    """Ready the connection to read every row of a view: on SQLite, register the functions
    compiled views call; on PostgreSQL, for the rest of the transaction:

    - ``jit = off``: compiling the nested JSON expressions took 0.7-3 s a query and won nothing
      back (a view over 1,000 resources: 3.9 s with, 0.5 s without);
    - ``cursor_tuple_fraction = 1``: the rows are streamed through a cursor, for which the
      planner by default favours the first tenth of the rows. The rows of 30,000 changed
      Persons out of 5.5 million resources were then found by reading the whole table (2.5 s)
      instead of through the type-and-time index (0.6 s). Every row is read, so plan for all.
    """
    if conn.dialect.name == "sqlite":
        dbapi: Any = conn.connection.dbapi_connection
        dbapi.create_function("fhirhub_reference_key", 2, _reference_key, deterministic=True)
        dbapi.create_function("fhirhub_temporal_order", 2, _temporal_order, deterministic=True)
    elif conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "SELECT set_config('jit', 'off', true), "
                "set_config('cursor_tuple_fraction', '1', true)"
            )
        )


def _scope_filters(view: View, scope: Scope, params: dict[str, Any]) -> list[str]:
    filters = []
    if scope.since_us is not None:
        filters.append("r.last_updated >= :scope_since")
        params["scope_since"] = scope.since_us
    if scope.pks is not None:
        filters.append("r.pk BETWEEN :scope_pk_from AND :scope_pk_to")
        params["scope_pk_from"], params["scope_pk_to"] = scope.pks
    if scope.patient is not None:
        params["scope_patient"] = scope.patient
        if view.resource == "Patient":
            filters.append("r.res_id = :scope_patient")
        else:
            stored = registry.compartment_rows("Patient", view.resource)
            if not stored:
                filters.append("1 = 0")  # the type is not in a patient's compartment
            else:
                names = []
                for i, link in enumerate(stored):
                    params[f"scope_link{i}"] = link
                    names.append(f":scope_link{i}")
                filters.append(
                    "r.pk IN (SELECT s.resource_pk FROM search_reference s "
                    "WHERE s.res_type = r.res_type AND s.param IN "
                    f"({', '.join(names)}) AND s.target_type = 'Patient' "
                    "AND s.target_id = :scope_patient)"
                )
    return filters


def stream_rows(
    conn: Connection, view: View, scope: Scope | None = None, *, batch: int = BATCH
) -> Generator[Row]:
    """The rows of ``view`` over the store, as the in-memory runner gives them."""
    rows = stream_keyed_rows(conn, view, scope, batch=batch)
    try:
        for _, row in rows:
            yield row
    finally:
        rows.close()


def stream_keyed_rows(
    conn: Connection, view: View, scope: Scope | None = None, *, batch: int = BATCH
) -> Generator[tuple[int, Row]]:
    """Each row of ``view`` with the ``resources.pk`` of the resource it came from."""
    scope = scope or Scope()
    scope_params: dict[str, Any] = {}
    filters = _scope_filters(view, scope, scope_params)
    chosen = plan(view, conn.dialect.name, filters)
    prepare(conn)
    streaming = {"stream_results": True, "yield_per": batch}  # for these reads only
    if chosen.compiled is None:
        result = conn.execute(
            text(
                f"SELECT r.pk, {dialect_for(conn.dialect.name).out('r.content')} "
                "FROM resources r WHERE r.res_type = :view_type "
                f"AND NOT r.deleted{''.join(' AND ' + f for f in filters)} ORDER BY r.pk"
            ),
            {"view_type": view.resource, **scope_params},
            execution_options=streaming,
        )
        try:
            for pk, content in result:
                for row in run_view(view, (loads(content),)):
                    yield pk, row
        finally:
            result.close()
        return
    compiled = chosen.compiled
    result = conn.execute(
        text(compiled.sql), {**compiled.params, **scope_params}, execution_options=streaming
    )
    names = compiled.columns
    checked = [
        i for i, n in enumerate(names) if compiled.many[n] and not compiled.collection.get(n)
    ]
    try:
        for pk, values in result:
            decoded = orjson.loads(values)
            for i in checked:  # an array for a column that must hold one value at most
                decoded[i] = _single(compiled, names[i], decoded[i])
            yield pk, dict(zip(names, decoded, strict=True))
    finally:
        result.close()


def _single(compiled: Compiled, name: str, values: list[Any] | None) -> Any:
    if values is None:
        return None
    if len(values) > 1:
        raise ViewError(
            f"column {name!r} gives {len(values)} values; set collection: true to keep them all",
            f"{compiled.locations[name]}.path",
        )
    return values[0] if values else None
