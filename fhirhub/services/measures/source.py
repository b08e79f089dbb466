"""The one place the indicators read data: the rows of a ViewDefinition over the store.

A view kept as a table (``fhirhub views materialize``) is read from it, the resources changed
since its last refresh run live (``fhirhub.views.materialize.stream_materialised``). Otherwise the
view runs through ``fhirhub.views.sql_run``: compiled to one SQL query over the current
resources (PostgreSQL JSONB or SQLite JSON) when the compiler takes it, else in memory over the
resources streamed from the ``resources`` table. Either way the rows are those the in-memory
runner gives (the official SQL on FHIR suite holds both to that).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from sqlalchemy import Connection

from fhirhub.views.definition import parse_view
from fhirhub.views.materialize import column_names, live_tuples, stream_materialised_tuples

BATCH = 1000
Tuples = tuple[list[str], Generator[tuple[Any, ...]]]  # column names, rows in their order


def view_rows(conn: Connection, view: Mapping[str, Any]) -> Tuples:
    """The rows of ``view`` over the current (not deleted) resources of its type, each a tuple
    in the order of the column names given with them."""
    kept = stream_materialised_tuples(conn, view, batch=BATCH)
    if kept is not None:
        return kept
    parsed = parse_view(view)
    return column_names(parsed), live_tuples(conn, parsed, batch=BATCH)
