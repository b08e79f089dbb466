"""Khanza fixtures: a SIMRS Khanza database on the real MariaDB (127.0.0.1:3306, or
``FHIRHUB_TEST_MARIADB_URL``), one per test, named ``fhirhub_khanza_test_<pid>_<n>`` and dropped
after it; and an ingest service on the fhirhub database (SQLite, then PostgreSQL).

Without a reachable MariaDB the Khanza tests are skipped, saying why; with ``CI=true`` they fail
instead (``.ci/run`` starts MariaDB).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_factories import load_reference
from khanza_city import ADMIN_URL, KhanzaRows, city_rows, create_database, create_schema
from khanza_city import drop_database as drop
from sqlalchemy import Engine, create_engine, text

from fhirhub.config import Settings
from fhirhub.ingest.service import IngestService

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
_state: dict[str, str] = {}
_numbers = itertools.count()


def _mariadb() -> None:
    """Skip (fail in CI) when MariaDB cannot be reached."""
    if "error" not in _state and "ok" not in _state:
        try:
            engine = create_engine(ADMIN_URL)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _state["ok"] = "1"
        except Exception as exc:
            _state["error"] = f"MariaDB unreachable at {ADMIN_URL}: {exc.__class__.__name__}"
    if "error" in _state:
        if IN_CI:
            pytest.fail(_state["error"] + " (CI=true requires MariaDB)", pytrace=False)
        pytest.skip(_state["error"])


@pytest.fixture(scope="session")
def city() -> KhanzaRows:
    return city_rows(persons=150)  # 42 RSUD visits, 12 procedures


@pytest.fixture
def khanza_url() -> Iterator[str]:
    """An empty Khanza database (the schema subset, no rows) of this test."""
    _mariadb()
    name = f"fhirhub_khanza_test_{os.getpid()}_{next(_numbers)}"
    url = create_database(name)
    create_schema(url)
    yield url
    drop(name)


@pytest.fixture
def mappings_dir(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", target)
    return target


@pytest.fixture
def settings(db_url: str, mappings_dir: Path) -> Settings:
    return Settings(
        database_url=db_url,
        mappings_dir=mappings_dir,
        terminology_dir=ROOT / "terminology",
        broker_url=None,
    )


@pytest.fixture
def service(engine: Engine, settings: Settings) -> Iterator[IngestService]:
    load_reference(engine)
    svc = IngestService.from_settings(engine, settings)
    yield svc
    svc.dispatcher.close()
