"""The resource repository: every SQL statement on resources and their versions.

Writes are batched: a caller stages :class:`Write` records and applies them together, so a
transaction bundle of thousands of entries costs a handful of round trips per table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, cast

import psycopg
from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import tuple_ as sql_tuple
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from fhirhub.storage.engine import chunks, is_postgres
from fhirhub.storage.index_models import INDEX_TABLES
from fhirhub.storage.models import resource_versions as V
from fhirhub.storage.models import resources as R
from fhirhub.storage.types import JsonText

IndexRows = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a resource as stored (``content`` is JSON text, None when deleted)."""

    pk: int
    res_type: str
    res_id: str
    version: int
    last_updated: int
    deleted: bool
    content: str | None
    method: str = "PUT"


@dataclass(slots=True)
class Write:
    """A new version to store. ``pk`` is None for a resource that does not exist yet."""

    res_type: str
    res_id: str
    version: int
    last_updated: int
    method: str
    content: str | None
    index: IndexRows | None = None
    pk: int | None = None
    # The stored version as the writer holds it (``content`` parsed), for who reacts to the
    # write in the same transaction (the patient index); never stored itself.
    body: dict[str, Any] | None = None

    @property
    def deleted(self) -> bool:
        return self.content is None


@dataclass
class HistoryPage:
    versions: list[StoredVersion]
    has_more: bool
    total: int | None = None
    cursor: tuple[int, int, int] | None = field(default=None)


# Below this many rows for a table, a write inserts them with the other tables' rows in one
# pipeline rather than by COPY (see ``_insert_all``).
COPY_FROM_ROWS = 64

_CURRENT_COLUMNS = (R.c.pk, R.c.res_type, R.c.res_id, R.c.version, R.c.last_updated, R.c.deleted)
# In the order of StoredVersion's fields.
_VERSION_COLUMNS = (
    V.c.resource_pk,
    V.c.res_type,
    V.c.res_id,
    V.c.version,
    V.c.last_updated,
    V.c.deleted,
    V.c.content,
    V.c.method,
)

# Read by id is the hottest statement: built once, so that a read skips building the
# expression and its cache key (about a tenth of a read's CPU when it was built per call).
_CURRENT = (
    select(*_CURRENT_COLUMNS, V.c.content)
    .join(V, and_(V.c.resource_pk == R.c.pk, V.c.version == R.c.version))
    .where(R.c.res_type == bindparam("res_type"), R.c.res_id == bindparam("res_id"))
)
_CURRENT_FOR_UPDATE = _CURRENT.with_for_update(of=R)

# Locking reads on PostgreSQL. A ``SELECT ... JOIN resource_versions ... FOR UPDATE OF r`` that
# waits for another writer of the row re-checks the row, once that writer commits, against
# version rows of its own older snapshot: the join fails and the resource looks absent (a PUT
# then "creates" it and fails; a DELETE deletes nothing). So the rows are locked alone, in key
# order (two writers of the same resources lock them in the same order: no deadlock), and read
# by a second statement, whose snapshot is taken once the locks are held. Both go in one
# pipeline: one round trip.
_KEYS = "unnest(%s::text[], %s::text[]) AS k(res_type, res_id)"
_LOCK_ROWS = (
    f"SELECT r.pk FROM resources r JOIN {_KEYS} "
    "ON r.res_type = k.res_type AND r.res_id = k.res_id ORDER BY r.pk FOR UPDATE OF r"
)
_READ_ROWS = (
    "SELECT r.pk, r.res_type, r.res_id, r.version, r.last_updated, r.deleted, v.content "
    f"FROM resources r JOIN {_KEYS} ON r.res_type = k.res_type AND r.res_id = k.res_id "
    "JOIN resource_versions v ON v.resource_pk = r.pk AND v.version = r.version"
)


# The errors by which PostgreSQL tells a transaction (or savepoint) that it lost a race to a
# concurrent writer, which running it again, after that writer, would win: a create of a Type/id
# created meanwhile (unique violation), or two writers each holding a lock the other wants.
_RACE_ERRORS = (
    psycopg.errors.UniqueViolation,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)


def lost_race(exc: BaseException) -> bool:
    """True if ``exc`` (raised by SQLAlchemy or by psycopg) says a concurrent writer won."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(cause, _RACE_ERRORS)


# The keys' locks in the order of their hashes (the subquery's order is the order the outer
# query calls the function in).
_LOCK_KEYS = text(
    "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(s.h) FROM (SELECT "
    "hashtextextended(k, 0) AS h FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS s) AS l"
)


class ResourceRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = is_postgres(conn)

    # --- reads -------------------------------------------------------------------------------

    def current(
        self, res_type: str, res_id: str, *, for_update: bool = False
    ) -> StoredVersion | None:
        """The current version (possibly a delete marker), or None if it never existed.

        ``for_update`` locks it until the transaction ends (SQLite: the writer already holds
        the database's write lock)."""
        stmt = _CURRENT_FOR_UPDATE if for_update else _CURRENT
        row = self.conn.execute(stmt, {"res_type": res_type, "res_id": res_id}).first()
        if row is None and for_update and self.postgres:
            # Absent, or changed by a writer this statement waited for (see _LOCK_ROWS): one
            # statement serves the common case of an update nobody else is making.
            return self._lock_and_read([(res_type, res_id)]).get((res_type, res_id))
        return None if row is None else StoredVersion(*row)

    def current_many(self, pks: Sequence[int]) -> dict[int, StoredVersion]:
        if not pks:
            return {}
        stmt = (
            select(*_CURRENT_COLUMNS, V.c.content)
            .join(V, and_(V.c.resource_pk == R.c.pk, V.c.version == R.c.version))
            .where(R.c.pk.in_(list(pks)))
        )
        return {row.pk: StoredVersion(*row) for row in self.conn.execute(stmt)}

    def heads(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredVersion]:
        """The current version (locked for update, body included) of each (type, id) that
        exists."""
        if self.postgres:
            return self._lock_and_read(keys)
        by_type: dict[str, list[str]] = defaultdict(list)
        for res_type, res_id in keys:
            by_type[res_type].append(res_id)
        found: dict[tuple[str, str], StoredVersion] = {}
        for res_type, ids in by_type.items():
            for chunk in chunks(ids, 900):
                stmt = (
                    select(*_CURRENT_COLUMNS, V.c.content)
                    .join(V, and_(V.c.resource_pk == R.c.pk, V.c.version == R.c.version))
                    .where(R.c.res_type == res_type, R.c.res_id.in_(chunk))
                )
                for row in self.conn.execute(stmt):
                    found[(row.res_type, row.res_id)] = StoredVersion(*row)
        return found

    def _lock_and_read(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredVersion]:
        """PostgreSQL: lock the rows of ``keys`` that exist, then read their current versions."""
        found: dict[tuple[str, str], StoredVersion] = {}
        wanted = sorted(set(keys))
        raw: Any = self.conn.connection.dbapi_connection  # a psycopg Connection
        while wanted:
            params = ([k[0] for k in wanted], [k[1] for k in wanted])
            with raw.pipeline(), raw.cursor() as lock, raw.cursor() as read:
                lock.execute(_LOCK_ROWS, params)
                read.execute(_READ_ROWS, params)
                locked = {pk for (pk,) in lock.fetchall()}
                rows = read.fetchall()
            wanted = []
            for row in rows:
                head = StoredVersion(*row)
                if head.pk in locked:
                    found[(head.res_type, head.res_id)] = head
                else:  # created by a writer that committed between the two statements
                    wanted.append((head.res_type, head.res_id))
        return found

    def version(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        stmt = select(*_VERSION_COLUMNS).where(
            V.c.res_type == res_type, V.c.res_id == res_id, V.c.version == version
        )
        row = self.conn.execute(stmt).first()
        return None if row is None else StoredVersion(*row)

    def history(
        self,
        *,
        res_type: str | None,
        res_id: str | None,
        since: int | None,
        before: int | None,
        count: int,
        cursor: tuple[int, int, int] | None,
        with_total: bool,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> HistoryPage:
        """Versions newest first, ``count`` at a time, continuing below ``cursor``; ``where``:
        more conditions on ``resource_versions`` (what the client may read)."""
        conds = list(where)
        if res_type is not None:
            conds.append(V.c.res_type == res_type)
        if res_id is not None:
            conds.append(V.c.res_id == res_id)
        if since is not None:
            conds.append(V.c.last_updated >= since)
        if before is not None:
            conds.append(V.c.last_updated < before)
        total = None
        if with_total:
            total = self.conn.execute(select(func.count()).select_from(V).where(*conds)).scalar()
        if cursor is not None:
            conds.append(sql_tuple(V.c.last_updated, V.c.resource_pk, V.c.version) < cursor)
        stmt = (
            select(*_VERSION_COLUMNS)
            .where(*conds)
            .order_by(V.c.last_updated.desc(), V.c.resource_pk.desc(), V.c.version.desc())
            .limit(count + 1)
        )
        rows = [StoredVersion(*r) for r in self.conn.execute(stmt)]
        has_more = len(rows) > count
        rows = rows[:count]
        last = rows[-1] if rows else None
        return HistoryPage(
            rows,
            has_more,
            total,
            (last.last_updated, last.pk, last.version) if has_more and last else None,
        )

    # --- locks -------------------------------------------------------------------------------

    def lock(self, key: str) -> None:
        """Serialise writers that share ``key`` until the transaction ends.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: every writer already holds the
        database's write lock (BEGIN IMMEDIATE), so nothing more is needed.
        """
        self.lock_many([key])

    def lock_many(self, keys: Iterable[str]) -> None:
        """:meth:`lock` for every key, in one statement, taken in one global order (their
        hashes): two writers of the same keys never wait for each other."""
        wanted = sorted(set(keys))
        if self.postgres and wanted:
            self.conn.execute(_LOCK_KEYS, {"keys": wanted})

    # --- writes ------------------------------------------------------------------------------

    def apply(
        self, writes: Sequence[Write], rows: Sequence[tuple[Any, list[dict[str, Any]]]] = ()
    ) -> None:
        """Store every write: new resources, new versions, and their index rows; ``rows``:
        (table, rows) of other tables to insert with them."""
        if not writes:
            self._insert_all(list(rows))
            return
        new = [w for w in writes if w.pk is None]
        existing = [w for w in writes if w.pk is not None]
        new_rows = [(R, self._new_resource_rows(new))] if new else []
        if existing:
            self.conn.execute(
                update(R)
                .where(R.c.pk == bindparam("b_pk"))
                .values(
                    version=bindparam("b_version"),
                    last_updated=bindparam("b_last_updated"),
                    deleted=bindparam("b_deleted"),
                    content=bindparam("b_content", type_=R.c.content.type),
                ),
                [
                    {
                        "b_pk": w.pk,
                        "b_version": w.version,
                        "b_last_updated": w.last_updated,
                        "b_deleted": w.deleted,
                        "b_content": w.content,
                    }
                    for w in existing
                ],
            )
            self.clear_index([w.pk for w in existing if w.pk is not None])
        versions = [
            {
                "resource_pk": w.pk,
                "version": w.version,
                "res_type": w.res_type,
                "res_id": w.res_id,
                "last_updated": w.last_updated,
                "method": w.method,
                "deleted": w.deleted,
                "content": w.content,
            }
            for w in writes
        ]
        index = _index_rows([(w.pk, w.res_type, w.index) for w in writes if w.index])
        self._insert_all([*new_rows, (V, versions), *index, *rows])

    def _new_resource_rows(self, new: list[Write]) -> list[dict[str, Any]]:
        """The ``resources`` rows of new resources, their keys assigned (``Write.pk``)."""
        rows = [
            {
                "res_type": w.res_type,
                "res_id": w.res_id,
                "version": w.version,
                "last_updated": w.last_updated,
                "deleted": w.deleted,
                "content": w.content,
            }
            for w in new
        ]
        if self.postgres:  # keys from the sequence in one round trip
            pks = self.conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('resources', 'pk')) "
                    "FROM generate_series(1, :n)"
                ),
                {"n": len(new)},
            ).scalars()
            for w, row, pk in zip(new, rows, pks, strict=True):
                w.pk = row["pk"] = pk
            return rows
        result = self.conn.execute(insert(R).returning(R.c.pk, sort_by_parameter_order=True), rows)
        for w, pk in zip(new, result.scalars().all(), strict=True):
            w.pk = pk
        return []  # inserted here: SQLite assigns the keys

    def _insert_all(self, batches: list[tuple[Any, list[dict[str, Any]]]]) -> None:
        """Insert rows into several tables. On PostgreSQL a table's many rows go by COPY (three
        round trips, whatever they carry), and the few rows of all other tables together in one
        pipeline (one round trip): a single create writes about ten rows into five tables."""
        batches = [(table, rows) for table, rows in batches if rows]
        if not self.postgres:
            for table, rows in batches:
                self.conn.execute(insert(table), rows)
            return
        raw: Any = self.conn.connection.dbapi_connection  # a psycopg Connection
        few: list[tuple[Any, list[dict[str, Any]]]] = []
        for table, rows in batches:  # in the order given: versions and index rows follow their
            if len(rows) < COPY_FROM_ROWS:  # resource
                few.append((table, rows))
                continue
            _pipelined(raw, few)
            few = []
            names = _insert_columns(table, rows[0])
            columns = ", ".join(f'"{n}"' for n in names)
            copy_sql = f'COPY "{table.name}" ({columns}) FROM STDIN'
            with raw.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row([row.get(n) for n in names])
        _pipelined(raw, few)

    def clear_index(self, pks: Sequence[int]) -> None:
        """Delete the search index rows of these resources. On PostgreSQL one statement a table,
        all in one pipeline (one round trip, not one a table: a tenth of a rebuild's time)."""
        if not pks:
            return
        if self.postgres:
            raw: Any = self.conn.connection.dbapi_connection
            with raw.pipeline(), raw.cursor(binary=True) as cur:
                for table in INDEX_TABLES.values():
                    cur.execute(
                        f'DELETE FROM "{cast(Table, table).name}" '
                        "WHERE resource_pk = ANY(%b::bigint[])",
                        (list(pks),),
                    )
            return
        for chunk in chunks(list(pks), 900):
            for table in INDEX_TABLES.values():
                index_table = cast(Table, table)
                self.conn.execute(delete(index_table).where(index_table.c.resource_pk.in_(chunk)))

    def ids_exist(self, res_type: str, res_ids: Sequence[str]) -> set[str]:
        """Which of ``res_ids`` exist (not deleted) as ``res_type``."""
        found: set[str] = set()
        for chunk in chunks(list(res_ids), 900):
            stmt = select(R.c.res_id).where(
                R.c.res_type == res_type, R.c.res_id.in_(chunk), R.c.deleted.is_(False)
            )
            found.update(self.conn.execute(stmt).scalars())
        return found


def _index_rows(
    items: Iterable[tuple[int | None, str, IndexRows | None]],
) -> list[tuple[Any, list[dict[str, Any]]]]:
    """(index table, rows) for the index rows of stored resources."""
    per_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pk, res_type, index in items:
        for table_name, rows in (index or {}).items():
            target = per_table[table_name]
            for row in rows:
                target.append({**row, "resource_pk": pk, "res_type": res_type})
    return [(INDEX_TABLES[name], rows) for name, rows in per_table.items()]


def _pipelined(raw: Any, batches: list[tuple[Any, list[dict[str, Any]]]]) -> None:
    """INSERT the rows of several tables in one psycopg pipeline (one round trip): one
    statement a table, its columns sent as arrays. A statement a row (``executemany``) cost
    about 40 us of psycopg's own work each: 5 ms for an HL7 message's 130 index rows."""
    if not batches:
        return
    # binary: psycopg escapes each string of a text-format array by regular expression
    with raw.pipeline(), raw.cursor(binary=True) as cur:
        for table, rows in batches:
            names = tuple(_insert_columns(table, rows[0]))
            sql, kinds = _insert_sql(table, names)
            columns = [[r.get(n) for r in rows] for n in names]
            cur.execute(sql, [_as_kind(kind, c) for kind, c in zip(kinds, columns, strict=True)])


def _insert_columns(table: Any, row: dict[str, Any]) -> list[str]:
    return [c.name for c in table.columns if c.name in row or not c.primary_key]


@cache
def _insert_sql(table: Any, names: tuple[str, ...]) -> tuple[str, tuple[type, ...]]:
    """``INSERT ... SELECT FROM unnest(arrays)`` for the columns ``names``, and the Python type
    each column's values are sent as (an array holds one type: an int among floats would
    make psycopg dump the array as integers)."""
    dialect = postgresql.dialect()
    arrays, selected, kinds = [], [], []
    for i, name in enumerate(names):
        column_type = table.c[name].type
        json = isinstance(column_type, JsonText)
        arrays.append(f"%b::{'text' if json else column_type.compile(dialect=dialect)}[]")
        selected.append(f"c{i}::jsonb" if json else f"c{i}")
        kinds.append(object if json else _python_type(column_type))
    columns = ", ".join(f'"{n}"' for n in names)
    aliases = ", ".join(f"c{i}" for i in range(len(names)))
    sql = (
        f'INSERT INTO "{table.name}" ({columns}) SELECT {", ".join(selected)} '
        f"FROM unnest({', '.join(arrays)}) AS u({aliases})"
    )
    return sql, tuple(kinds)


def _python_type(column_type: Any) -> type:
    try:
        python_type = column_type.python_type
    except NotImplementedError:  # a type of our own that does not say
        return object
    return python_type if python_type in (int, float, bool, str) else object


def _as_kind(kind: type, values: list[Any]) -> list[Any]:
    if kind in (int, float):
        return [None if v is None else kind(v) for v in values]
    return values
