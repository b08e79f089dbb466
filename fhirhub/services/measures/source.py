"""The one place the indicators read data: the rows of a ViewDefinition over the store.

A view kept as a table (``fhirhub views materialize``) is read from it, the resources changed
since its last refresh run live (``fhirhub.views.materialize.stream_materialised``). Otherwise the
view runs through ``fhirhub.views.sql_run``: compiled to one SQL query over the current
resources (PostgreSQL JSONB or SQLite JSON) when the compiler takes it, else in memory over the
resources streamed from the ``resources`` table. Either way the rows are those the in-memory
runner gives (the official SQL on FHIR suite holds both to that).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection

from fhirhub.views.definition import parse_view
from fhirhub.views.materialize import stream_materialised
from fhirhub.views.run import Row
from fhirhub.views.sql_run import stream_rows

BATCH = 1000


def view_rows(conn: Connection, view: Mapping[str, Any]) -> Iterator[Row]:
    """The rows of ``view`` over the current (not deleted) resources of its type."""
    kept = stream_materialised(conn, view, batch=BATCH)
    if kept is not None:
        return kept
    return stream_rows(conn, parse_view(view), batch=BATCH)
