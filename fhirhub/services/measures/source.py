"""The one place the indicators read data: the rows of a ViewDefinition over the store.

Today the view runs in memory (:func:`fhirhub.views.run.run_view`) over the current resources of
its type, streamed from the ``resources`` table; the SQL compiler of ``fhirhub.views`` (or a
materialised view table) replaces the body of :func:`view_rows` without any caller changing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from sqlalchemy import Connection, select

from fhirhub.search.tables import resources
from fhirhub.views.run import Row, run_view

BATCH = 1000


def _bodies(conn: Connection, res_type: str) -> Iterator[Mapping[str, Any]]:
    stmt = (
        select(resources.c.content)
        .where(resources.c.res_type == res_type, resources.c.deleted.is_(False))
        .order_by(resources.c.pk)
        .execution_options(yield_per=BATCH)
    )
    for (content,) in conn.execute(stmt):
        if content:
            yield orjson.loads(content)


def view_rows(conn: Connection, view: Mapping[str, Any]) -> Iterator[Row]:
    """The rows of ``view`` over the current (not deleted) resources of its type."""
    res_type = view.get("resource")
    if not isinstance(res_type, str):
        return run_view(view, [])  # the runner says what is wrong with the view
    return run_view(view, _bodies(conn, res_type))
