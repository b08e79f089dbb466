"""``fhirhub migrate`` brings an empty database to the newest schema, and running it again
changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from fhirhub import cli
from fhirhub.cli import app
from fhirhub.config import get_settings
from fhirhub.storage.engine import alembic_config, downgrade, make_engine

runner = CliRunner()
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(cli.console, "width", 1000)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _schema(url: str) -> tuple[set[str], list[str]]:
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        versions: list[str] = []
        if "alembic_version" in tables:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT version_num FROM alembic_version"))
                versions = [row[0] for row in rows]
        return tables, versions
    finally:
        engine.dispose()


def _migrate(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", url)
    get_settings.cache_clear()
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    return result.output


def test_migrate_creates_the_schema_of_an_empty_database(
    db_url: str, database: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    downgrade(db_url, "base")  # every table dropped: an empty database
    tables, versions = _schema(db_url)
    assert "resources" not in tables and "inbox_messages" not in tables and versions == []
    output = _migrate(db_url, monkeypatch)
    assert "database migrated" in output
    tables, versions = _schema(db_url)
    assert {"resources", "resource_versions", "inbox_messages"} <= tables
    assert versions == [HEAD]
    # again: nothing to do, and nothing breaks
    _migrate(db_url, monkeypatch)
    assert _schema(db_url) == (tables, versions)


def test_migrate_creates_a_new_sqlite_file(
    tmp_path: Path, database: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "new" / "fhirhub.sqlite3"
    path.parent.mkdir()
    assert not path.exists()
    _migrate(f"sqlite:///{path}", monkeypatch)
    assert path.exists()
    tables, versions = _schema(f"sqlite:///{path}")
    assert "resources" in tables and versions == [HEAD]
