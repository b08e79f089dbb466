"""Start-up on a database whose schema is not at the newest revision (issue 9, item 1).

Commands refuse an unmigrated database in one line naming ``fhirhub migrate`` (or migrate it
themselves: the SQLite default, ``FHIRHUB_AUTO_MIGRATE``); ``/readyz`` says so; ``fhirhub
migrate`` against a database that does not exist says so in one line. Each test makes a fresh,
empty database: an SQLite file, and a PostgreSQL database of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from typer.testing import CliRunner

from fhirhub.api.app import create_app
from fhirhub.cli import app
from fhirhub.config import Settings, get_settings
from fhirhub.storage.engine import (
    SchemaCheck,
    make_engine,
    migrate,
    schema_head,
    schema_problem,
)

PG_ADMIN_URL = os.environ.get(
    "FHIRHUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
runner = CliRunner()


def _pg_admin(sql: str) -> None:
    admin = make_engine(PG_ADMIN_URL, pool_size=1)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    name = f"fhirhub_empty_{uuid.uuid4().hex[:12]}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        reason = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc.__class__.__name__}"
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("FHIRHUB_AUTO_MIGRATE", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _use(env: pytest.MonkeyPatch, url: str, auto_migrate: str | None = None) -> None:
    env.setenv("FHIRHUB_DATABASE_URL", url)
    if auto_migrate is not None:
        env.setenv("FHIRHUB_AUTO_MIGRATE", auto_migrate)
    get_settings.cache_clear()


def _one_line_error(result: object) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 1, (result.stdout, stderr)  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _bundle_file(tmp_path: Path) -> Path:
    path = tmp_path / "org.ndjson"
    path.write_text('{"resourceType":"Organization","id":"pkm-wolio","name":"PKM Wolio"}\n')
    return path


@pytest.mark.parametrize(
    "command", [["serve"], ["inbox", "list"], ["load", "FILE"], ["worker"], ["beat"]]
)
def test_commands_refuse_an_unmigrated_database_naming_fhirhub_migrate(
    empty_url: str, env: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    _use(env, empty_url, auto_migrate="false")  # PostgreSQL's default; SQLite told so
    env.setenv("FHIRHUB_BROKER_URL", "redis://127.0.0.1:1/0")  # never reached
    args = [str(_bundle_file(tmp_path)) if a == "FILE" else a for a in command]
    line = _one_line_error(runner.invoke(app, args))
    assert "no schema yet" in line and "`fhirhub migrate`" in line
    engine = make_engine(empty_url)
    try:
        assert schema_problem(engine) is not None  # nothing was migrated behind our back
    finally:
        engine.dispose()


def test_postgresql_is_not_migrated_unless_a_setting_says_so(
    empty_url: str, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _use(env, empty_url)
    expected_default = empty_url.startswith("sqlite")  # SQLite keeps migrating itself
    assert get_settings().migrates_itself is expected_default
    if not expected_default:
        assert "fhirhub migrate" in _one_line_error(
            runner.invoke(app, ["load", str(_bundle_file(tmp_path))])
        )
    _use(env, empty_url, auto_migrate="true")
    result = runner.invoke(app, ["load", str(_bundle_file(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "stored 1" in result.output
    engine = make_engine(empty_url)
    try:
        assert schema_problem(engine) is None
    finally:
        engine.dispose()


def test_an_older_revision_is_named_with_the_newest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate(url, "0001")
    engine = make_engine(url)
    try:
        problem = schema_problem(engine)
    finally:
        engine.dispose()
    assert problem is not None
    assert "revision 0001" in problem and schema_head() in problem
    assert "`fhirhub migrate`" in problem


def test_readyz_is_not_ready_while_the_schema_is_behind(empty_url: str) -> None:
    application = create_app(Settings(database_url=empty_url), run_migrations=False)
    try:
        with TestClient(application) as client:
            behind = client.get("/readyz")
            application.state.schema_check.ttl = 0  # look again at once (default: 5 s)
            migrate(empty_url)
            ready = client.get("/readyz")
    finally:
        application.state.database.engine.dispose()
    assert behind.status_code == 503
    assert behind.json()["status"] == "unavailable"
    assert behind.json()["checks"]["schema"] == "behind"
    assert "fhirhub migrate" in behind.json()["reasons"]["schema"]
    assert ready.status_code == 200, ready.json()
    assert ready.json()["checks"]["schema"] == "ok"


def test_the_schema_check_is_not_repeated_once_at_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        check = SchemaCheck(engine, ttl=0)
        assert check.problem() is None
        first = len(statements)
        assert first > 0
        for _ in range(5):
            assert check.problem() is None
        assert len(statements) == first  # remembered: no query per probe
    finally:
        engine.dispose()


def test_migrate_says_in_one_line_that_the_database_does_not_exist(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name = f"fhirhub_missing_{uuid.uuid4().hex[:12]}"
    missing = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        _pg_admin("SELECT 1")
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable: {exc.__class__.__name__}", pytrace=False)
        pytest.skip("PostgreSQL unreachable")
    _use(env, missing)
    line = _one_line_error(runner.invoke(app, ["migrate"]))
    assert "does not exist" in line and name in line
    _use(env, f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'db.sqlite3'}")
    line = _one_line_error(runner.invoke(app, ["migrate"]))
    assert "cannot open the database" in line
