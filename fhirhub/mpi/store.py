"""Every SQL statement on the patient index's tables (``fhirhub/storage/mpi_models.py``).

Statements take and return ids only; the records' demographics stay in the resource store.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from fhirhub.storage.engine import chunks, is_postgres
from fhirhub.storage.models import resources as R
from fhirhub.storage.mpi_models import mpi_blocks as B
from fhirhub.storage.mpi_models import mpi_decisions as D
from fhirhub.storage.mpi_models import mpi_records as M
from fhirhub.storage.mpi_models import mpi_state as S

LEVEL3, LEVEL4 = "level3", "level4"  # linked automatically / decided by a person
_CHUNK = 500  # ids per IN (...) list
COPY_FROM = 2000  # rows written at once past which PostgreSQL gets them by COPY


Stored = tuple[int, str]  # a record's stored features: (lastUpdated they were taken at, text)


@dataclass(frozen=True)
class Membership:
    person_id: str
    assurance: str


# A list goes to PostgreSQL as one text, split by the server: psycopg dumps an array element by
# element (about 2 us each: 0.3 ms a statement for a Bundle's 125 keys, a few a Bundle). Keys
# and ids never hold the separator (a control character; see features.blocking_keys).
SEPARATOR = "\x1f"
TEXTS = "string_to_array(%b, E'\\x1f')"
INTS = "string_to_array(%b, ',', 'N')::int[]"


def texts(values: Iterable[str]) -> str:
    """``values`` as the parameter of :data:`TEXTS` (none empty, none holding SEPARATOR)."""
    return SEPARATOR.join(values)


def ints(values: Iterable[int | None]) -> str:
    """``values`` as the parameter of :data:`INTS`."""
    return ",".join("N" if v is None else str(v) for v in values)


# Key locks a transaction may take one by one. Each takes a slot of PostgreSQL's shared lock
# table (max_locks_per_transaction x max_connections: 6,400 by default, for every session): a
# batch with more keys (a Bundle of 2,000 Patients has 24,000) takes the whole index instead.
MAX_KEY_LOCKS = 500
_INDEX_LOCK = "mpi|*"  # held shared beside key locks; alone and exclusive for a large batch
# The index's lock shared first, then the keys' in the order of their hashes (an Append runs
# its parts in order), each exclusive or, where ``shared`` (see gather), shared. A key with a
# ``crowd`` is not locked once its committed block already holds that many records: a block
# that full is over its cap for every writer from now on (blocks only grow, but for deleted and
# changed records), so no writer finds a candidate through it and there is nothing to take
# turns for. Without this, every two writers of a "MUHAMMAD" in one postcode waited for each
# other: a fifth of the time of two concurrent Bundles went to it. Only keys this process saw
# over their cap a while ago (CROWDED) get a crowd: counting every key cost as much as reading
# the blocks. The statement returns the keys given a crowd that it found under it (and so
# locked), as one separated text: the others are full, and the block read need not read them
# again (gather).
_KEY_LOCK = (
    "CASE WHEN s.shared THEN pg_advisory_xact_lock_shared(s.h) ELSE pg_advisory_xact_lock(s.h) END"
)
_SHARED = "string_to_array(%b, ',')::bool[]"
_LOCK_SQL = (
    "SELECT string_agg(l.key, E'\\x1f') FILTER (WHERE l.crowd IS NOT NULL) FROM ("
    "SELECT NULL::text AS key, NULL::int AS crowd, "
    "pg_advisory_xact_lock_shared(hashtextextended(%b, 0)) "
    f"UNION ALL SELECT s.key, s.crowd, {_KEY_LOCK} FROM (SELECT k.key, k.crowd, k.shared, "
    "hashtextextended('mpi|' || k.key, 0) AS h "
    f"FROM unnest({TEXTS}, {INTS}, {_SHARED}) AS k(key, crowd, shared) WHERE k.crowd IS NULL "
    "OR (SELECT count(*) FROM (SELECT 1 FROM mpi_blocks WHERE mpi_blocks.key = k.key "
    "LIMIT k.crowd) AS c) < k.crowd ORDER BY h) AS s) AS l"
)
# The same without crowds: it reads no table, so its plan may be kept (prepared) whatever the
# tables become; planning the statement above cost as much as running it.
_LOCK_KEYS_SQL = (
    "SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended(%b, 0)) "
    f"UNION ALL SELECT {_KEY_LOCK} FROM (SELECT k.shared, hashtextextended('mpi|' || k.key, 0) "
    f"AS h FROM unnest({TEXTS}, {_SHARED}) AS k(key, shared) ORDER BY h) AS s) AS l"
)
# Weak keys whose block a read or the lock's count found full, with when (time.monotonic()).
# For CROWDED_TRUSTED seconds after, the key is taken as crowded still: neither locked, counted
# nor read (counting a crowded block reads its limit of rows, most of what the lock cost).
# After, the lock counts it again. A block shrinks only as its records are deleted or change
# the name, date or address it was keyed on: such a block, under its limit again, is missed by
# a process that saw it crowded for at most that long.
CROWDED: dict[str, float] = {}
CROWDED_TRUSTED = 300.0
_CROWDED_KEPT = 200_000


def lock(conn: Connection, keys: Iterable[str]) -> None:
    """Serialise index writers that share any of ``keys`` until the transaction ends, taking
    the locks (exclusive) in one global order (so two writers never wait for each other in a
    circle). SQLite writers already hold the database's write lock."""
    if not is_postgres(conn):
        return
    statement = lock_statement(keys)
    if statement is not None:
        raw: Any = conn.connection.driver_connection
        with raw.cursor(binary=True) as cur:
            cur.execute(*statement)


def lock_statement(
    keys: Iterable[str],
    crowd: dict[str, int] | None = None,
    shared: Iterable[str] = (),
) -> tuple[str, tuple[Any, ...]] | None:
    """The statement :func:`lock` runs (PostgreSQL), None when there is nothing to lock. Every
    key lock goes with the whole index's lock held shared; past MAX_KEY_LOCKS keys the whole
    index is locked alone, exclusive. ``crowd``: blocking keys left unlocked once their block
    holds that many records (see _LOCK_SQL); ``shared``: keys locked shared."""
    wanted = sorted(set(keys))
    if not wanted:
        return None
    if len(wanted) > MAX_KEY_LOCKS:
        return "SELECT pg_advisory_xact_lock(hashtextextended(%b, 0))", (_INDEX_LOCK,)
    shared = set(shared)
    modes = ",".join("t" if k in shared else "f" for k in wanted)
    if not crowd:
        return _LOCK_KEYS_SQL, (_INDEX_LOCK, texts(wanted), modes)
    return _LOCK_SQL, (_INDEX_LOCK, texts(wanted), ints(crowd.get(k) for k in wanted), modes)


# --- records -------------------------------------------------------------------------------


def memberships(conn: Connection, patient_ids: Iterable[str]) -> dict[str, Membership]:
    out: dict[str, Membership] = {}
    for chunk in chunks(sorted(set(patient_ids)), _CHUNK):
        rows = conn.execute(
            select(M.c.patient_id, M.c.person_id, M.c.assurance).where(M.c.patient_id.in_(chunk))
        )
        out.update({r.patient_id: Membership(r.person_id, r.assurance) for r in rows})
    return out


def members(conn: Connection, person_id: str) -> dict[str, str]:
    """The Patients of a Person, with their assurance."""
    rows = conn.execute(
        select(M.c.patient_id, M.c.assurance)
        .where(M.c.person_id == person_id)
        .order_by(M.c.patient_id)
    )
    return {r.patient_id: r.assurance for r in rows}


def set_memberships(
    conn: Connection,
    records: dict[str, Membership],
    now: int,
    fresh: Iterable[str] = (),
    features: Mapping[str, Stored] | None = None,
) -> None:
    """:func:`set_membership` for many records (``fresh`` ones have none yet; ``features``:
    the records' stored features, where known): two statements."""
    table, rows = membership_rows(conn, records, now, fresh, features)
    columns = {
        "patient_id": "text",
        "person_id": "text",
        "assurance": "text",
        "updated": "bigint",
        "features": "text",
        "features_at": "bigint",
    }
    _insert(conn, table, columns, [tuple(r[c] for c in columns) for r in rows])


def membership_rows(
    conn: Connection,
    records: dict[str, Membership],
    now: int,
    fresh: Iterable[str] = (),
    features: Mapping[str, Stored] | None = None,
) -> tuple[Table, list[dict[str, Any]]]:
    """:func:`set_memberships` with the new rows returned for the caller to insert (with its
    own writes): the old rows of records that had one are deleted here. A record moved without
    new ``features`` keeps those it had (they are read only while its version is theirs)."""
    ids = sorted(set(records) - set(fresh))
    known = dict(features or {})
    for chunk in chunks(ids, _CHUNK):
        gone = conn.execute(
            delete(M)
            .where(M.c.patient_id.in_(chunk))
            .returning(M.c.patient_id, M.c.features_at, M.c.features)
        )
        for pid, at, old in gone:
            if old is not None:
                known.setdefault(pid, (at, old))
    rows = []
    for p, m in records.items():
        at, text_ = known.get(p, (None, None))
        rows.append(
            {
                "patient_id": p,
                "person_id": m.person_id,
                "assurance": m.assurance,
                "updated": now,
                "features": text_,
                "features_at": at,
            }
        )
    return M, rows


def set_features(conn: Connection, features: Mapping[str, Stored]) -> None:
    """Store the features of records whose Person stays as it is (``features``: Patient id ->
    (lastUpdated, encoded features))."""
    if not features:
        return
    ids = sorted(features)
    if is_postgres(conn):
        raw: Any = conn.connection.driver_connection
        raw.execute(
            "UPDATE mpi_records SET features = f.text, features_at = f.at FROM unnest("
            "%s::text[], %s::bigint[], %s::text[]) AS f(id, at, text) "
            "WHERE mpi_records.patient_id = f.id",
            [ids, [features[p][0] for p in ids], [features[p][1] for p in ids]],
        )
        return
    conn.execute(
        update(M)
        .where(M.c.patient_id == bindparam("pid"))
        .values(features=bindparam("text_"), features_at=bindparam("at")),
        [{"pid": p, "at": features[p][0], "text_": features[p][1]} for p in ids],
    )


def forget_features(conn: Connection, patient_ids: Iterable[str]) -> None:
    """Drop the stored features of records written without the index placing them (it was
    off): they are no longer their current version's, and a block read takes stored features
    for current ones."""
    for chunk in chunks(sorted(set(patient_ids)), _CHUNK):
        conn.execute(
            update(M)
            .where(M.c.patient_id.in_(chunk), M.c.features.is_not(None))
            .values(features=None, features_at=None)
        )


def drop_membership(conn: Connection, patient_id: str) -> None:
    conn.execute(delete(M).where(M.c.patient_id == patient_id))


# --- blocking keys ---------------------------------------------------------------------------


def replace_blocks_many(
    conn: Connection, keys: dict[str, set[str]], created: Iterable[str] = ()
) -> None:
    """:func:`replace_blocks` for many records (``created`` ones have none yet): a few
    statements, whatever their number."""
    if not keys:
        return
    have: dict[str, set[str]] = defaultdict(set)
    for chunk in chunks(sorted(set(keys) - set(created)), _CHUNK):
        for r in conn.execute(select(B.c.key, B.c.patient_id).where(B.c.patient_id.in_(chunk))):
            have[r.patient_id].add(r.key)
    gone = [(k, pid) for pid, ks in have.items() for k in ks - keys[pid]]
    for pid in sorted({pid for _, pid in gone}):
        ks = sorted(k for k, p in gone if p == pid)
        conn.execute(delete(B).where(B.c.patient_id == pid, B.c.key.in_(ks)))
    new = [(k, pid) for pid, ks in keys.items() for k in sorted(ks - have.get(pid, set()))]
    insert_blocks(conn, new)


def insert_blocks(conn: Connection, rows: Sequence[tuple[str, str]]) -> None:
    """Blocking keys of records that have none yet: (key, patient id)."""
    _insert(conn, B, {"key": "text", "patient_id": "text"}, rows)


def _insert(
    conn: Connection, table: Any, columns: dict[str, str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Rows into one of the index's tables (``columns``: name -> PostgreSQL type). On
    PostgreSQL a few rows go as one INSERT of arrays (one round trip, one cached plan) and many
    by COPY (a rebuild's millions); elsewhere an executemany."""
    if not rows:
        return
    names = list(columns)
    if not is_postgres(conn):
        conn.execute(insert(table), [dict(zip(names, row, strict=True)) for row in rows])
        return
    raw: Any = conn.connection.driver_connection
    if len(rows) < COPY_FROM:
        arrays = ", ".join(f"%s::{columns[n]}[]" for n in names)
        raw.execute(
            f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays})",
            [list(column) for column in zip(*rows, strict=True)],
        )
        return
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as c:
        for row in rows:
            c.write_row(row)


def refresh_statistics(
    engine: Engine, tables: Sequence[str] = ("mpi_blocks", "mpi_records")
) -> None:
    """Let PostgreSQL's planner see the index's tables as they are now (``VACUUM (ANALYZE)``),
    after a rebuild rewrote them faster than autovacuum follows. With the statistics of the old
    (or an empty) table, a batch's block read estimated 1,800 records a key instead of 2, joined
    every Patient and every record by hash and compiled itself (JIT): 0.5 s a batch of 500
    instead of 0.15. Nothing to do on SQLite."""
    if not is_postgres(engine):
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM (ANALYZE) {', '.join(tables)}"))


def clear_blocks(conn: Connection) -> None:
    conn.execute(delete(B))


def drop_blocks(conn: Connection, patient_id: str) -> None:
    conn.execute(delete(B).where(B.c.patient_id == patient_id))


def blocks(conn: Connection, keys: Iterable[str], cap: int) -> dict[str, list[str]]:
    """The records of each blocking key, at most ``cap + 1`` of them (one more than ``cap``
    tells a block is over it): a crowded key is never read whole."""
    wanted = sorted(set(keys))
    out: dict[str, list[str]] = defaultdict(list)
    if not wanted:
        return out
    if is_postgres(conn):
        rows = conn.execute(
            text(
                "SELECT k.key, b.patient_id FROM unnest(CAST(:keys AS text[])) AS k(key) "
                "CROSS JOIN LATERAL (SELECT patient_id FROM mpi_blocks "
                "WHERE mpi_blocks.key = k.key LIMIT :n) AS b"
            ),
            {"keys": wanted, "n": cap + 1},
        )
        for r in rows:
            out[r.key].append(r.patient_id)
        return out
    for chunk in chunks(wanted, _CHUNK):
        ranked = (
            select(
                B.c.key,
                B.c.patient_id,
                func.row_number().over(partition_by=B.c.key, order_by=B.c.patient_id).label("n"),
            )
            .where(B.c.key.in_(chunk))
            .subquery()
        )
        for r in conn.execute(
            select(ranked.c.key, ranked.c.patient_id).where(ranked.c.n <= cap + 1)
        ):
            out[r.key].append(r.patient_id)
    return out


@dataclass
class Gathered:
    """What placing a batch of records needs to read, gathered by :func:`gather`."""

    blocks: dict[str, list[str]]  # key -> its records, when under its limit
    full: set[str]  # keys whose block holds its limit of records or more: nobody's way in
    where: dict[str, Membership]  # the batch's records, the deleted ones, the candidates
    decided: dict[str, dict[str, bool]]  # the batch's records' decisions by a person
    # candidate -> the lastUpdated of its current version, where the index stored its features
    stamps: dict[str, int]
    # candidate -> its encoded features, where they were stored from its current version
    features: dict[str, str] = field(default_factory=dict)


def gather(
    conn: Connection,
    keys: dict[str, set[str]],
    limits: dict[str, int],
    *,
    replace: bool,
    created: Iterable[str] = (),
    deleted: Sequence[str] = (),
    weak: Iterable[str] = (),
    shared: Iterable[str] = (),
    guards: Iterable[str] = (),
    stamped: bool = True,
) -> Gathered:
    """For a batch of records (``keys``: record -> its blocking keys): lock the keys (so two
    writers of one citizen take turns; a ``weak`` key only while its block is under its limit:
    past it, it is nobody's way to a candidate; a ``shared`` key shared, so that writers of
    records that can never link take no turns on it: only against a writer locking it
    exclusive; ``guards``: keys only locked, exclusive, never stored nor read), replace the
    records' stored keys when ``replace``
    (``created`` records have none yet) and drop those of ``deleted`` records, then read each
    key's block (at most ``limits[key]`` records), the Person of every record met, the
    decisions people made about the batch's records, and (``stamped``) when each candidate was
    last updated: a caller that knows every record's features already (a rebuild) need not ask.

    On PostgreSQL all of it is one pipeline, a single round trip: the statements one by one
    were most of the index's cost of a Bundle."""
    own = sorted(set(keys) | set(deleted))
    all_keys = sorted({k for ks in keys.values() for k in ks})
    if not is_postgres(conn):
        return _gather_statements(conn, keys, limits, all_keys, own, replace, created, deleted)
    raw: Any = conn.connection.driver_connection
    fresh = set(created)
    new_pairs = [(k, pid) for pid, ks in keys.items() if pid in fresh for k in sorted(ks)]
    kept_pairs = [(k, pid) for pid, ks in keys.items() if pid not in fresh for k in sorted(ks)]
    kept = sorted(set(keys) - fresh)
    members: dict[str, list[str]] = defaultdict(list)  # key -> the batch's records holding it
    for pid in sorted(keys):
        for k in keys[pid]:
            members[k].append(pid)
    # binary parameters: psycopg dumps a list of strings as text three times slower
    weak = set(weak)
    with raw.pipeline() as pipeline, raw.cursor(binary=True) as writes:
        # Keys this process saw crowded: lately, taken as crowded still; before, counted by the
        # lock. Past MAX_KEY_LOCKS the whole index is locked, and every block is read.
        now = time.monotonic()
        sighted = {k: CROWDED[k] for k in weak & CROWDED.keys() if limits[k] > len(members[k])}
        guards = sorted(set(guards))
        if len(all_keys) + len(guards) > MAX_KEY_LOCKS:
            sighted = {}
        seen = {k for k, at in sighted.items() if now - at < CROWDED_TRUSTED}
        crowd = {k: limits[k] for k in sighted if k not in seen}
        statement = lock_statement([k for k in all_keys if k not in seen] + guards, crowd, shared)
        locks = raw.cursor(binary=True)
        if statement is not None:  # counting blocks, planned each time, as the reads below
            locks.execute(*statement, prepare=None if not crowd else False)
        if replace and kept:
            writes.execute(
                f"DELETE FROM mpi_blocks WHERE patient_id = ANY({TEXTS}) AND (key, patient_id) "
                f"NOT IN (SELECT * FROM unnest({TEXTS}, {TEXTS}))",
                (texts(kept), texts(k for k, _ in kept_pairs), texts(p for _, p in kept_pairs)),
            )
        if replace and kept_pairs:  # most of their keys are stored already
            writes.execute(
                f"INSERT INTO mpi_blocks (key, patient_id) SELECT * FROM unnest({TEXTS}, "
                f"{TEXTS}) ON CONFLICT DO NOTHING",
                (texts(k for k, _ in kept_pairs), texts(p for _, p in kept_pairs)),
            )
        if replace and new_pairs:
            writes.execute(
                f"INSERT INTO mpi_blocks (key, patient_id) SELECT * FROM unnest({TEXTS}, {TEXTS})",
                (texts(k for k, _ in new_pairs), texts(p for _, p in new_pairs)),
            )
        if deleted:
            writes.execute(
                f"DELETE FROM mpi_blocks WHERE patient_id = ANY({TEXTS})", (texts(sorted(deleted)),)
            )
        # The batch's own records are left out of the block reads: which keys each holds is
        # known here, and they were most of the rows read (each new record meets itself in
        # every one of its blocks). A block's limit counts them, as it counts every record.
        # A key sighted crowded is not read: taken as crowded still, or counted by the lock.
        read = [k for k in all_keys if limits[k] > len(members[k]) and k not in sighted]
        met = _read_blocks(raw, read, limits, members, sorted(keys), stamped)
        # A record created in this transaction has no Person and no decision yet: only the
        # others' are read (a Bundle of new Patients reads none).
        stored = sorted(set(own) - fresh)
        mine = raw.cursor(binary=True)
        if stored:
            mine.execute(
                "SELECT patient_id, person_id, assurance FROM mpi_records "
                f"WHERE patient_id = ANY({TEXTS})",
                (texts(stored),),
                prepare=False,
            )
        people = raw.cursor(binary=True)
        if kept:
            people.execute(
                "SELECT patient_a, patient_b, same FROM mpi_decisions "
                f"WHERE patient_a = ANY({TEXTS}) OR patient_b = ANY({TEXTS})",
                (texts(kept), texts(kept)),
                prepare=False,
            )
        pipeline.sync()
        found = met.fetchall()
        # the keys the lock found under their crowd after all (a record of theirs deleted or
        # changed): read now, in a second round trip
        reopened: set[str] = set()
        if crowd and statement is not None:
            reopened = set((locks.fetchone()[0] or "").split(SEPARATOR)) - {""}
        if reopened:
            again = _read_blocks(raw, sorted(reopened), limits, members, sorted(keys), stamped)
            found += again.fetchall()
            again.close()
        where: dict[str, Membership] = {}
        if stored:
            where = {p: Membership(person, level) for p, person, level in mine.fetchall()}
        decided: dict[str, dict[str, bool]] = defaultdict(dict)
        for a, b, same in people.fetchall() if kept else ():
            decided[a][b] = decided[b][a] = same
        for cur in (locks, met, mine, people):
            cur.close()
    blocks: dict[str, list[str]] = defaultdict(list)
    full: set[str] = {k for k in all_keys if limits[k] <= len(members[k])}
    counted = set(crowd) - reopened  # its committed block at its limit, by the lock's count
    full.update(seen | counted)
    # A block read to its limit beside one record of the batch holds more than its cap of
    # others, committed: a sighting. Beside several, the batch itself may be what fills it.
    sightings = counted
    stamps: dict[str, int] = {}
    features: dict[str, str] = {}
    for key, pid, person, level, updated, encoded in found:
        if pid is None:
            full.add(key)
            if key in weak and len(members[key]) == 1:
                sightings.add(key)
            continue
        blocks[key].append(pid)
        if person is not None and pid not in where:  # a record met in several blocks
            where[pid] = Membership(person, level)
        if updated is not None:
            stamps[pid] = updated
        if encoded is not None:
            features[pid] = encoded
    for key in all_keys:
        if key not in full:
            blocks[key].extend(members[key])
    if sightings:
        if len(CROWDED) >= _CROWDED_KEPT:
            CROWDED.clear()
        CROWDED.update(dict.fromkeys(sightings, now))
    return Gathered(blocks, full, where, decided, stamps, features)


def _read_blocks(
    raw: Any,
    read: list[str],
    limits: dict[str, int],
    members: dict[str, list[str]],
    own: list[str],
    stamped: bool,
) -> Any:
    """Start reading the blocks of ``read`` (each to its limit, less the batch's own ``members``
    of it, which are left out) with the Person of each record met and, ``stamped``, the
    features the index stored for it, with the lastUpdated of the version they were taken from:
    a cursor whose rows are ``(key, record, person, assurance, lastUpdated, features)``, one
    row with no record for a block read to its limit."""
    # A record's stored features are its current version's: every write that does not place
    # the record drops them (forget_features). Where there are none, no stamp either.
    stamp, features_sql = ("m.features_at", "m.features") if stamped else ("NULL", "NULL")
    met = raw.cursor(binary=True)
    # The reads are planned each time (prepare=False): a plan psycopg kept from the first
    # Bundles (PostgreSQL keeps it until statistics change, never without autovacuum)
    # joined every Patient of the store to the blocks (tests/mpi/test_index_plans.py).
    # The lateral lookups stay index probes whatever the planner believes of the tables.
    # A block read to its limit is over its cap: its records are no one's candidates, so
    # it comes back as one row, its record NULL, with no Person looked up.
    met.execute(
        "WITH b AS (SELECT k.key, b.patient_id, "
        "count(*) OVER (PARTITION BY k.key) < k.n AS open, "
        "row_number() OVER (PARTITION BY k.key) AS i "
        f"FROM unnest({TEXTS}, {INTS}) AS k(key, n) "
        "CROSS JOIN LATERAL (SELECT patient_id FROM mpi_blocks "
        f"WHERE mpi_blocks.key = k.key AND patient_id <> ALL({TEXTS}) LIMIT k.n) AS b) "
        "SELECT b.key, CASE WHEN b.open THEN b.patient_id END, m.person_id, m.assurance, "
        f"CASE WHEN m.features IS NOT NULL THEN {stamp} END, {features_sql} FROM b "
        "LEFT JOIN LATERAL (SELECT person_id, assurance, features, features_at "
        "FROM mpi_records WHERE b.open AND mpi_records.patient_id = b.patient_id LIMIT 1) "
        "AS m ON true WHERE b.open OR b.i = 1",
        (texts(read), ints(limits[k] - len(members[k]) for k in read), texts(own)),
        prepare=False,
    )
    return met


def _gather_statements(
    conn: Connection,
    keys: dict[str, set[str]],
    limits: dict[str, int],
    all_keys: list[str],
    own: list[str],
    replace: bool,
    created: Iterable[str],
    deleted: Sequence[str],
) -> Gathered:
    """:func:`gather` statement by statement (SQLite, whose writers are serial already)."""
    if replace:
        replace_blocks_many(conn, keys, created)
    for pid in deleted:
        drop_blocks(conn, pid)
    by_key: dict[str, list[str]] = {}
    for n in sorted(set(limits.values())):
        by_key.update(blocks(conn, [k for k in all_keys if limits[k] == n], n - 1))
    full = {k for k, pids in by_key.items() if len(pids) >= limits[k]}  # read to its limit
    by_key = {k: pids for k, pids in by_key.items() if k not in full}
    met = {p for pids in by_key.values() for p in pids}
    stamps = patient_stamps(conn, met)
    where = memberships(conn, set(own) | set(stamps))
    features = kept_features(conn, stamps)
    return Gathered(by_key, full, where, decisions_many(conn, keys), stamps, features)


def kept_features(conn: Connection, stamps: dict[str, int]) -> dict[str, str]:
    """The encoded features stored for records (``stamps``: id -> current lastUpdated), where
    they were taken from that version."""
    out: dict[str, str] = {}
    for chunk in chunks(sorted(stamps), _CHUNK):
        rows = conn.execute(
            select(M.c.patient_id, M.c.features, M.c.features_at).where(
                M.c.patient_id.in_(chunk), M.c.features.is_not(None)
            )
        )
        out.update(
            {r.patient_id: r.features for r in rows if r.features_at == stamps[r.patient_id]}
        )
    return out


def candidates(conn: Connection, caps: dict[str, int]) -> dict[str, tuple[int, Any]]:
    """The current Patients of the blocks of ``caps``' keys that hold at most their cap of
    records (a crowded block is no one's candidates): id -> (lastUpdated, body). On PostgreSQL
    one statement, each body once (as JSON text, for the caller's faster parser)."""
    if not caps:
        return {}
    if not is_postgres(conn):
        found: set[str] = set()
        for cap in sorted(set(caps.values())):
            keys = [k for k, c in caps.items() if c == cap]
            found.update(
                p for pids in blocks(conn, keys, cap).values() if len(pids) <= cap for p in pids
            )
        return patient_versions(conn, found)
    keys = sorted(caps)
    raw: Any = conn.connection.driver_connection
    with raw.cursor(binary=True) as cur:
        cur.execute(
            "WITH b AS (SELECT b.patient_id, count(*) OVER (PARTITION BY k.key) <= k.cap AS open "
            f"FROM unnest({TEXTS}, {INTS}) AS k(key, cap) "
            "CROSS JOIN LATERAL (SELECT patient_id FROM mpi_blocks "
            "WHERE mpi_blocks.key = k.key LIMIT k.cap + 1) AS b), "
            "c AS (SELECT DISTINCT patient_id FROM b WHERE open) "
            "SELECT r.res_id, r.last_updated, r.content::text FROM c JOIN resources AS r "
            "ON r.res_type = 'Patient' AND r.res_id = c.patient_id AND NOT r.deleted",
            (texts(keys), ints(caps[k] for k in keys)),
        )
        return {pid: (at, body) for pid, at, body in cur.fetchall() if body is not None}


def patient_stamps(conn: Connection, patient_ids: Iterable[str]) -> dict[str, int]:
    """When each current Patient of ``patient_ids`` was last updated."""
    return {r.res_id: r.last_updated for r in _current(conn, patient_ids, R.c.last_updated)}


# --- decisions by a person -------------------------------------------------------------------


def decisions_many(conn: Connection, patient_ids: Iterable[str]) -> dict[str, dict[str, bool]]:
    """:func:`decisions` of many records."""
    out: dict[str, dict[str, bool]] = defaultdict(dict)
    for chunk in chunks(sorted(set(patient_ids)), _CHUNK):
        rows = conn.execute(
            select(D.c.patient_a, D.c.patient_b, D.c.same).where(
                D.c.patient_a.in_(chunk) | D.c.patient_b.in_(chunk)
            )
        )
        for r in rows:
            out[r.patient_a][r.patient_b] = r.same
            out[r.patient_b][r.patient_a] = r.same
    return out


def members_many(conn: Connection, person_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """:func:`members` of many Persons."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for chunk in chunks(sorted(set(person_ids)), _CHUNK):
        rows = conn.execute(
            select(M.c.person_id, M.c.patient_id, M.c.assurance).where(M.c.person_id.in_(chunk))
        )
        for r in rows:
            out[r.person_id][r.patient_id] = r.assurance
    return out


def decide(conn: Connection, a: str, b: str, same: bool, who: str, now: int) -> None:
    lo, hi = sorted((a, b))
    conn.execute(delete(D).where(D.c.patient_a == lo, D.c.patient_b == hi))
    conn.execute(insert(D).values(patient_a=lo, patient_b=hi, same=same, who=who, decided=now))


# --- state -----------------------------------------------------------------------------------


def get_state(conn: Connection, name: str) -> str | None:
    value: str | None = conn.scalar(select(S.c.value).where(S.c.name == name))
    return value


def set_state(conn: Connection, name: str, value: str) -> None:
    if conn.execute(update(S).where(S.c.name == name).values(value=value)).rowcount == 0:
        conn.execute(insert(S).values(name=name, value=value))


def drop_state(conn: Connection, name: str) -> None:
    conn.execute(delete(S).where(S.c.name == name))


# --- reads of the store ----------------------------------------------------------------------


def patient_bodies(conn: Connection, patient_ids: Iterable[str]) -> dict[str, Any]:
    """The current bodies of Patients (JSON text or, on PostgreSQL, parsed), without locks."""
    rows = _current(conn, patient_ids, R.c.content)
    return {r.res_id: r.content for r in rows if r.content is not None}


def patient_versions(conn: Connection, patient_ids: Iterable[str]) -> dict[str, tuple[int, Any]]:
    """:func:`patient_bodies` with when each was last updated: id -> (lastUpdated, body)."""
    rows = _current(conn, patient_ids, R.c.last_updated, R.c.content)
    return {r.res_id: (r.last_updated, r.content) for r in rows if r.content is not None}


def _current(conn: Connection, patient_ids: Iterable[str], *columns: Any) -> Iterator[Any]:
    """Rows (``res_id`` and ``columns``) of the current Patients of ``patient_ids``."""
    for chunk in chunks(sorted(set(patient_ids)), _CHUNK):
        yield from conn.execute(
            select(R.c.res_id, *columns).where(
                R.c.res_type == "Patient", R.c.res_id.in_(chunk), R.c.deleted.is_(False)
            )
        )


def all_patient_bodies(conn: Connection) -> Iterable[tuple[str, Any]]:
    """(id, body) of every current Patient, by id, read in pages."""
    return ((pid, body) for pid, _, body in all_patient_versions(conn))


def all_patient_versions(conn: Connection) -> Iterable[tuple[str, int, Any]]:
    """(id, lastUpdated, body) of every current Patient, by id, read in pages."""
    after = ""
    while True:
        rows = conn.execute(
            select(R.c.res_id, R.c.last_updated, R.c.content)
            .where(R.c.res_type == "Patient", R.c.deleted.is_(False), R.c.res_id > after)
            .order_by(R.c.res_id)
            .limit(5000)
        ).all()
        if not rows:
            return
        yield from ((r.res_id, r.last_updated, r.content) for r in rows if r.content is not None)
        after = rows[-1].res_id


def orphan_records(conn: Connection) -> list[str]:
    """Records of Patients that are no longer current (deleted while the index was off).
    NOT EXISTS, an anti join: NOT IN re-read the whole subquery for every record once it
    outgrew work_mem (hours at 200,000 records)."""
    current = (
        select(R.c.pk)
        .where(R.c.res_type == "Patient", R.c.res_id == M.c.patient_id, R.c.deleted.is_(False))
        .exists()
    )
    return list(conn.scalars(select(M.c.patient_id).where(~current)))


def count_records(conn: Connection) -> int:
    """How many records the index holds: an estimate on PostgreSQL (the planner's, refreshed by
    autovacuum), exact on SQLite."""
    if is_postgres(conn):
        n = conn.scalar(
            text("SELECT reltuples::bigint FROM pg_class WHERE relname = 'mpi_records'")
        )
        if n is not None and n > 0:
            return int(n)
    return int(conn.scalar(select(func.count()).select_from(M)) or 0)


def counts(conn: Connection) -> dict[str, int]:
    """Records by assurance and persons: for ``fhirhub mpi stats``."""
    out = {
        f"records_{a}": n
        for a, n in conn.execute(select(M.c.assurance, func.count()).group_by(M.c.assurance))
    }
    out["records"] = sum(out.values())
    out["persons"] = conn.scalar(select(func.count(func.distinct(M.c.person_id)))) or 0
    out["decisions"] = conn.scalar(select(func.count()).select_from(D)) or 0
    return out


def all_memberships(conn: Connection) -> Iterable[tuple[str, str, str]]:
    """(patient id, person id, assurance) of every record, by person."""
    query = select(M.c.patient_id, M.c.person_id, M.c.assurance)
    rows = conn.execute(query.order_by(M.c.person_id, M.c.patient_id))
    yield from ((r.patient_id, r.person_id, r.assurance) for r in rows)
