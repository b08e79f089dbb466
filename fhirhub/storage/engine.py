"""Database engines and schema migration, for PostgreSQL (psycopg 3) and SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# The migrations live at the top of the project, as DESIGN.md lays it out.
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
