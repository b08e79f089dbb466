"""Keep a view as a table, brought current from what changed since its last refresh.

``view_<name>`` has a column per view column (typed from the column's ``type``: booleans,
integers and decimals as such, a collection as its JSON text, anything else as text) and
``_resource_pk``, the resource each row came from. :func:`refresh`:

1. reads the watermark (``view_watermarks``); a view never built, or whose definition changed,
   is rebuilt from nothing;
2. takes the newest ``last_updated`` of the view's type as the next watermark, before reading;
3. walks the resources changed since the last watermark (less :data:`OVERLAP_US`: a writer's
   transaction stamps its resources when it starts and may commit a moment after a refresh
   read past them), a thousand at a time in ``pk`` order: deletes their rows and inserts the
   rows of their current versions (none for a deleted one). Deleting and inserting is
   idempotent, so reading some resources twice changes nothing;
4. records the watermark, in the same transaction as the rows.

:func:`stream_materialised` reads a view's rows from its table, as :func:`stream_rows` would give
them over the store: the table's rows, except those of resources changed since the watermark
(less the overlap), whose current versions are run live instead. So a table that is a little
behind still gives current rows, and a fresh one gives them at the speed of a table scan.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import queue
import re
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg.rows import tuple_row
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    MetaData,
    Table,
    Text,
    delete,
    insert,
    select,
    text,
    update,
)

from fhirhub.model.instant import now_us
from fhirhub.search.tables import resources
from fhirhub.storage.view_models import view_watermarks
from fhirhub.views.definition import Column as ViewColumn
from fhirhub.views.definition import Select, View, parse_view
from fhirhub.views.errors import ViewError
from fhirhub.views.run import Row
from fhirhub.views.sql_run import Scope, prepare, stream_keyed_rows, stream_rows

OVERLAP_US = 5 * 60 * 1_000_000
CHUNK = 1000
_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,58}")
_INTEGERS = {"integer", "positiveInt", "unsignedInt", "integer64"}


@dataclass
class Refreshed:
    view: str
    table: str
    rebuilt: bool
    resources: int  # resources read (changed since the watermark)
    rows: int  # rows in the table now


def table_name(view: View) -> str:
    if not view.name:
        raise ViewError("a materialised view needs a name", "ViewDefinition.name", "required")
    name = f"view_{view.name.lower()}"
    if not _TABLE_NAME.fullmatch(name):
        raise ViewError(
            "the name must be letters, digits and _ (at most 54)", "ViewDefinition.name"
        )
    return name


def _columns(select_: Select) -> list[ViewColumn]:
    found = list(select_.columns)
    for sub in select_.selects:
        found.extend(_columns(sub))
    if select_.union_all:
        found.extend(_columns(select_.union_all[0]))
    return found


def column_names(view: View) -> list[str]:
    """The view's column names, in the order of its rows' values."""
    return [c.name for c in _columns(view.root)]


def _sql_type(column: ViewColumn) -> Any:
    if column.collection:
        return Text()
    if column.type == "boolean":
        return Boolean()
    if column.type in _INTEGERS:
        return BigInteger()
    if column.type == "decimal":
        return Float()
    return Text()


def view_table(view: View) -> Table:
    """The table a view is kept in (a fresh MetaData: these tables are not the migrations')."""
    name = table_name(view)
    table = Table(
        name,
        MetaData(),
        Column("_resource_pk", BigInteger, nullable=False),
        *(Column(c.name, _sql_type(c), nullable=True) for c in _columns(view.root)),
    )
    Index(f"ix_{name}_resource_pk", table.c._resource_pk)
    return table


def _cell(column: ViewColumn, value: Any) -> Any:
    if value is None:
        return None
    if column.collection or isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    kind = _sql_type(column)
    wrong = (
        (isinstance(kind, Boolean) and not isinstance(value, bool))
        or (
            isinstance(kind, BigInteger) and (not isinstance(value, int) or isinstance(value, bool))
        )
        or (
            isinstance(kind, Float)
            and (not isinstance(value, int | float) or isinstance(value, bool))
        )
    )
    if wrong:
        raise ViewError(
            f"column {column.name!r} is declared {column.type} but gave {value!r}",
            f"{column.location}.type",
        )
    return value if not isinstance(kind, Text) or isinstance(value, str) else str(value)


def definition_hash(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def refresh(
    engine: Engine,
    data: Mapping[str, Any],
    *,
    full: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Refreshed:
    """Bring the view ``data`` (a ViewDefinition) current. ``progress(done, total)`` is called
    after each chunk of resources."""
    view = parse_view(data)
    table = view_table(view)
    columns = {c.name: c for c in _columns(view.root)}
    digest = definition_hash(data)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # one refresh of a view at a time
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                {"k": f"fhirhub.view.{table.name}"},
            )
        mark = conn.execute(
            select(view_watermarks).where(view_watermarks.c.view_name == table.name)
        ).first()
        rebuild = full or mark is None or mark.definition_sha256 != digest
        if rebuild:
            table.drop(conn, checkfirst=True)
            table.create(conn)
        since = None if rebuild or mark is None else mark.last_updated - OVERLAP_US
        upto = conn.execute(
            text("SELECT max(last_updated) FROM resources WHERE res_type = :t"),
            {"t": view.resource},
        ).scalar()
        done = _apply_changes(conn, view, table, columns, since, progress)
        rows = conn.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one()
        values = {
            "table_name": table.name,
            "definition_sha256": digest,
            "last_updated": upto if upto is not None else 0,
            "refreshed_at": now_us(),
            "row_count": rows,
        }
        if mark is None:
            conn.execute(insert(view_watermarks).values(view_name=table.name, **values))
        else:
            conn.execute(
                update(view_watermarks)
                .where(view_watermarks.c.view_name == table.name)
                .values(**values)
            )
    return Refreshed(view.name or "", table.name, rebuild, done, rows)


def _apply_changes(
    conn: Connection,
    view: View,
    table: Table,
    columns: Mapping[str, ViewColumn],
    since: int | None,
    progress: Callable[[int, int], None] | None,
) -> int:
    changed = "res_type = :t" + ("" if since is None else " AND last_updated > :since")
    params: dict[str, Any] = {"t": view.resource, "since": since}
    total = conn.execute(
        text(f"SELECT count(*) FROM resources WHERE {changed}"), params
    ).scalar_one()
    done = 0
    after = 0
    while True:
        pks = (
            conn.execute(
                text(
                    f"SELECT pk FROM resources WHERE {changed} AND pk > :after "
                    f"ORDER BY pk LIMIT {CHUNK}"
                ),
                {**params, "after": after},
            )
            .scalars()
            .all()
        )
        if not pks:
            break
        first, after = pks[0], pks[-1]
        if since is not None:
            conn.execute(delete(table).where(table.c._resource_pk.in_(pks)))
        scope = Scope(since_us=None if since is None else since + 1, pks=(first, after))
        rows = stream_keyed_rows(conn, view, scope)
        try:  # closed here, not by the garbage collector in the middle of another statement
            batch = [
                (pk, *(_cell(column, row.get(name)) for name, column in columns.items()))
                for pk, row in rows
            ]
        finally:
            rows.close()
        if batch:
            _insert(conn, table, batch)
        done += len(pks)
        if progress is not None:
            progress(done, total)
    return done


def _insert(conn: Connection, table: Table, batch: list[tuple[Any, ...]]) -> None:
    """Rows in the table's column order: by COPY on PostgreSQL (an INSERT a row, even
    pipelined, cost ten times as much), else one executemany."""
    if conn.dialect.name == "postgresql":
        names = ", ".join(f'"{c.name}"' for c in table.columns)
        cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
        finally:
            cursor.close()
        return
    keys = [c.name for c in table.columns]
    conn.execute(insert(table), [dict(zip(keys, row, strict=True)) for row in batch])


def stream_materialised(
    conn: Connection, data: Mapping[str, Any], *, batch: int = CHUNK
) -> Generator[Row] | None:
    """The rows of the view ``data`` read from its table, or None when it has no table built
    from this definition (the caller runs the view over the store instead)."""
    found = stream_materialised_tuples(conn, data, batch=batch)
    if found is None:
        return None
    return _as_dicts(*found)


def _as_dicts(names: list[str], rows: Generator[tuple[Any, ...]]) -> Generator[Row]:
    try:
        for values in rows:
            yield dict(zip(names, values, strict=True))
    finally:
        rows.close()


def stream_materialised_tuples(
    conn: Connection, data: Mapping[str, Any], *, batch: int = CHUNK
) -> tuple[list[str], Generator[tuple[Any, ...]]] | None:
    """As :func:`stream_materialised`, each row a tuple in the order of the column names given
    with them (millions of rows: no dict a row). Rows may share their decoded collections:
    read them, never change them."""
    view = parse_view(data)
    table = view_table(view)
    mark = conn.execute(
        select(view_watermarks).where(view_watermarks.c.view_name == table.name)
    ).first()
    if mark is None or mark.definition_sha256 != definition_hash(data):
        return None
    return column_names(view), _materialised(
        conn, view, table, mark.last_updated - OVERLAP_US, batch
    )


_AHEAD = 4  # batches a table read fetches ahead of its reader
_READS = itertools.count()  # names each read's cursor: two reads may share a connection
_DECODED_KEPT = 50_000  # distinct collection texts remembered while reading a table


def _materialised(
    conn: Connection, view: View, table: Table, since: int, batch: int
) -> Generator[tuple[Any, ...]]:
    columns = _columns(view.root)
    names = [c.name for c in columns]
    decode = [i for i, c in enumerate(columns) if c.collection]  # kept as JSON text
    loads = orjson.loads
    changed = select(resources.c.pk).where(
        resources.c.res_type == view.resource, resources.c.last_updated > since
    )
    prepare(conn)
    query = select(*(table.c[n] for n in names)).where(table.c._resource_pk.not_in(changed))
    # a collection's text decoded once: a few distinct code lists fill millions of rows
    decoded: dict[str, Any] = {}
    for part in _table_rows(conn, query, batch):
        if not decode:
            yield from part
            continue
        for found in part:
            values = list(found)
            for i in decode:
                raw = values[i]
                if raw is not None:
                    value = decoded.get(raw)
                    if value is None:
                        if len(decoded) >= _DECODED_KEPT:
                            decoded.clear()
                        value = decoded[raw] = loads(raw)
                    values[i] = value
            yield tuple(values)
    yield from live_tuples(conn, view, Scope(since_us=since + 1), batch=batch)


def live_tuples(
    conn: Connection, view: View, scope: Scope | None = None, *, batch: int = CHUNK
) -> Generator[tuple[Any, ...]]:
    """The rows :func:`~fhirhub.views.sql_run.stream_rows` runs over the store, each a tuple in
    the order of :func:`column_names`."""
    names = column_names(view)
    rows = stream_rows(conn, view, scope, batch=batch)
    try:
        for row in rows:
            yield tuple(row.get(n) for n in names)
    finally:
        rows.close()


def _table_rows(conn: Connection, query: Any, batch: int) -> Generator[Sequence[tuple[Any, ...]]]:
    """The rows of ``query``, a batch at a time. On PostgreSQL from psycopg's server-side
    cursor, as tuples (SQLAlchemy's result rows cost more than reading them: millions of rows
    for a large city's indicators), the next batches fetched by a thread while the caller
    works on this one, so that PostgreSQL reads the table while Python builds from it.
    Elsewhere through SQLAlchemy, which types SQLite's booleans."""
    if conn.dialect.name != "postgresql":
        result = conn.execute(query, execution_options={"stream_results": True, "yield_per": batch})
        try:
            yield from result.partitions()
        finally:
            result.close()
        return
    sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
    dbapi: Any = conn.connection.dbapi_connection
    cursor = dbapi.cursor(name=f"fhirhub_view_table_{next(_READS)}", row_factory=tuple_row)
    parts: queue.Queue[Sequence[tuple[Any, ...]] | BaseException | None] = queue.Queue(
        maxsize=_AHEAD
    )
    stop = threading.Event()

    def fetch() -> None:
        try:
            cursor.execute(sql)
            while not stop.is_set():
                part = cursor.fetchmany(batch)
                parts.put(part or None)
                if not part:
                    return
        except BaseException as exc:  # handed to the reader, raised there
            parts.put(exc)

    fetcher = threading.Thread(target=fetch, name="fhirhub-view-table", daemon=True)
    fetcher.start()
    try:
        while True:
            found = parts.get()
            if found is None:
                return
            if isinstance(found, BaseException):
                raise found
            yield found
    finally:
        stop.set()
        while fetcher.is_alive():  # a reader that stopped early: let the fetcher finish
            with contextlib.suppress(queue.Empty):
                parts.get(timeout=0.1)
        fetcher.join()
        cursor.close()
