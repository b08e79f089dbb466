"""Database engines and schema migration, for PostgreSQL (psycopg 3) and SQLite."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

# The migrations live at the top of the project (docs/architecture.md, "Where things live").
ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for every PostgreSQL URL."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    connect_timeout: int | None = None,
    statement_timeout: float | None = None,
) -> Engine:
    """An engine for ``url``. On PostgreSQL, ``connect_timeout`` (seconds) bounds opening a
    connection and ``statement_timeout`` (seconds, 0 for none) is set on each connection as it
    opens (a libpq option: no round trip per request), so the database cancels any statement
    that runs longer; the server sets both, CLI jobs neither."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,  # parameters hold patient data: never in errors or logs
            connect_args={"check_same_thread": False, "timeout": 60},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if connect_timeout:
        connect_args["connect_timeout"] = connect_timeout
        # A database host that vanishes mid-statement (no reset, no answer) is noticed by TCP
        # keepalives in about a minute, instead of never.
        connect_args.update(keepalives=1, keepalives_idle=30, keepalives_interval=10)
        connect_args["keepalives_count"] = 3
    if statement_timeout:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
    return create_engine(
        url,
        echo=echo,
        hide_parameters=True,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        # No pre-ping: it costs a round trip on every checkout. A connection that died (a
        # database restart) fails its statement once and the pool then drops all of them.
        pool_recycle=3600,
    )


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Python's sqlite3 opens transactions lazily; we issue BEGIN ourselves (see below) so that
    # a writer takes the write lock at once and concurrent conditional creates serialise.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def _sqlite_on_begin(conn: Any) -> None:
    # Readers (execution option readonly=True) take no lock; writers take the write lock at
    # once, so two writers never both read "no match" and then both insert.
    if conn.get_execution_options().get("readonly"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(engine_or_conn: Any) -> bool:
    return bool(engine_or_conn.dialect.name == "postgresql")


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``items`` in slices of at most ``size``: the values one statement takes (SQLite binds
    at most 32,766 parameters, and takes at most 500 parts of a compound SELECT)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` with Alembic."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


class DatabaseNotReady(RuntimeError):
    """The database cannot be used as it is; the message says why and what to do, in a line."""


@lru_cache
def _revisions() -> tuple[str, frozenset[str]]:
    """The newest revision the migrations in ``alembic/`` define, and all of them (read once
    per process)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head, frozenset(rev.revision for rev in script.walk_revisions())


def schema_head() -> str:
    return _revisions()[0]


def schema_problem(engine: Engine) -> str | None:
    """Why the database's schema is not the one this code needs, in one line; None when it is
    at the newest revision. A database that cannot be reached raises (DBAPIError)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    head = schema_head()
    if current == (head,):
        return None
    if not current:
        return "the database has no schema yet: run `fhirhub migrate`"
    unknown = [rev for rev in current if rev not in _revisions()[1]]
    if unknown:
        return (
            f"the database schema is at revision {unknown[0]}, which this fhirhub does not "
            "know: it was migrated by a newer version"
        )
    if len(current) == 1:
        return f"the database schema is at revision {current[0]}, not {head}: run `fhirhub migrate`"
    return f"the database schema has several heads ({', '.join(current)}): run `fhirhub migrate`"


class SchemaCheck:
    """:func:`schema_problem`, remembered: a schema at head stays at head (the check is not
    repeated), one behind is checked again at most every ``ttl`` seconds."""

    def __init__(self, engine: Engine, ttl: float = 5.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._problem: str | None = None
        self._at_head = False
        self._checked = -float("inf")

    def problem(self) -> str | None:
        if self._at_head:
            return None
        now = time.monotonic()
        if now - self._checked >= self.ttl:
            try:
                self._problem = schema_problem(self.engine)
            except DBAPIError:
                self._problem = "the database cannot be reached"
            self._checked = now
            self._at_head = self._problem is None
        return self._problem


def prepare(url: str, *, migrate_if_behind: bool) -> None:
    """Make sure the database at ``url`` has the newest schema before it is used: migrate it
    (``migrate_if_behind``) or check it. Raises :class:`DatabaseNotReady` with a one-line
    reason (an unmigrated schema, a database that does not exist or cannot be reached)."""
    backend = make_url(url).get_backend_name()
    if backend not in ("postgresql", "postgres", "sqlite"):
        raise DatabaseNotReady(f"fhirhub runs on PostgreSQL or SQLite, not {backend}")
    try:
        if migrate_if_behind:
            migrate(url)
            return
        engine = make_engine(url, pool_size=1)
        try:
            problem = schema_problem(engine)
        finally:
            engine.dispose()
    except DBAPIError as err:
        raise DatabaseNotReady(connection_problem(url, err)) from err
    if problem:
        raise DatabaseNotReady(problem)


def connection_problem(url: str, error: BaseException) -> str:
    """A one-line account of a database that cannot be opened (no password, no traceback)."""
    shown = make_url(url).render_as_string(hide_password=True)
    original = getattr(error, "orig", None) or error
    detail = (
        str(original).strip().splitlines()[0] if str(original).strip() else type(error).__name__
    )
    if "does not exist" in detail and "database" in detail:
        return f"the database {shown} does not exist ({detail}); create it first"
    return f"cannot open the database {shown}: {detail}"
