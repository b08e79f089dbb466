"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL is found at ``FHIRHUB_TEST_POSTGRES_URL`` (default: the local server's ``test``
database). Each test process gets a database of its own, migrated once and emptied between
tests. Without a reachable server the PostgreSQL half is skipped and the summary says so; with
``CI=true`` an unreachable server fails the run instead.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from fhirhub.services import audit_buffer
from fhirhub.storage.engine import make_engine, migrate

PG_ADMIN_URL = os.environ.get(
    "FHIRHUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"

_pg_state: dict[str, object] = {}


def _database_name() -> str:
    # One per test process: parallel runs (xdist workers, several developers) never share.
    return f"fhirhub_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


def postgres_url() -> str:
    """A migrated PostgreSQL database for this test process (created on first use)."""
    if "url" in _pg_state:
        return str(_pg_state["url"])
    if "error" in _pg_state:
        _skip_or_fail(str(_pg_state["error"]))
    try:
        admin = make_engine(PG_ADMIN_URL)
        name = _database_name()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:  # the server is down or refuses us
        _pg_state["error"] = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc.__class__.__name__}"
        _skip_or_fail(str(_pg_state["error"]))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    _pg_state["url"] = url
    _pg_state["name"] = name
    return url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this process's PostgreSQL database."""
    if "name" not in _pg_state:
        return
    admin = make_engine(PG_ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{_pg_state["name"]}" WITH (FORCE)'))
    admin.dispose()


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason + " (CI=true requires PostgreSQL)", pytrace=False)
    pytest.skip(reason)


# --- no patient data in logs ----------------------------------------------------------------
# Every record the suite's fhirhub, uvicorn, sqlalchemy and celery loggers emit is checked as it
# is handled (nothing is kept unless it leaks): a NIK-shaped number or a name of the synthetic
# city fails the session.

_CHECKED_LOGGERS = ("fhirhub", "uvicorn", "sqlalchemy", "celery")
_NIK_SHAPED = re.compile(r"(?<![0-9])[0-9]{16}(?![0-9])")


def _synthetic_names() -> re.Pattern[str]:
    from fhirhub.synth import names

    pools = [
        v
        for k, v in vars(names).items()
        if k.isupper() and k != "STREETS" and isinstance(v, tuple) and v
        if all(isinstance(x, str) for x in v)
    ]
    words = {w for pool in pools for name in pool for w in name.split() if len(w) > 3}
    return re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, words))) + r")\b")


_NAMES: list[re.Pattern[str]] = []


def patient_data_in(record: logging.LogRecord) -> str | None:
    """The stretch of a log record that looks like a NIK or a synthetic name, if any."""
    if not _NAMES:
        _NAMES.append(_synthetic_names())
    try:
        text = record.getMessage()
    except Exception:  # a malformed record is the logging module's business
        text = str(record.msg)
    if record.exc_info and record.exc_info[1] is not None:
        text += "".join(traceback.format_exception(record.exc_info[1]))
    found = _NIK_SHAPED.search(text) or _NAMES[0].search(text)
    if found is None:
        return None
    return text[max(0, found.start() - 60) : found.end() + 20]


@pytest.fixture(scope="session", autouse=True)
def no_patient_data_in_logs() -> Iterator[None]:
    leaks: list[str] = []
    original = logging.Logger.callHandlers

    def checked(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.name.startswith(_CHECKED_LOGGERS) and len(leaks) < 20:
            leak = patient_data_in(record)
            if leak is not None:
                leaks.append(f"{record.name}: ...{leak}")
        original(self, record)

    logging.Logger.callHandlers = checked  # type: ignore[method-assign]
    fhirhub_logger = logging.getLogger("fhirhub")
    level = fhirhub_logger.level
    fhirhub_logger.setLevel(logging.INFO)  # the info lines too
    yield
    logging.Logger.callHandlers = original  # type: ignore[method-assign]
    fhirhub_logger.setLevel(level)
    if leaks:
        pytest.fail("patient data in the logs:\n" + "\n".join(leaks), pytrace=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


def _empty_postgres(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
                "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ).scalar_one()
        if tables:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """The URL of an empty, migrated database: SQLite, then PostgreSQL."""
    # An earlier test's app may still hold buffered AuditEvents: dropped now, not stored
    # later into this test's database (nor into a database an outage test broke).
    audit_buffer.stop_all(store=False)
    if request.param == "sqlite":
        path = tmp_path / "fhirhub.sqlite3"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = postgres_url()
    _empty_postgres(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


# Rows the patient index wrote (Persons, review Tasks, its Provenance) and the audit trail, for
# tests that count what the sources sent: ``... WHERE res_type = :t AND {SOURCES_ONLY}``.
SOURCES_ONLY = (
    "(res_type <> 'AuditEvent' "
    "AND (content IS NULL OR CAST(content AS TEXT) NOT LIKE '%/source/patient-index%'))"
)


@pytest.fixture(autouse=True)
def _no_crowded_sightings() -> None:
    """Forget the blocks the patient index saw crowded (``store.CROWDED``, trusted for a few
    minutes): they were another test's database."""
    from fhirhub.mpi import store

    store.CROWDED.clear()
