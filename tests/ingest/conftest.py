"""Ingest fixtures: a migrated database with the city's reference data, an ingest service whose
mapping tables are a copy the test may edit."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ingest_factories import load_reference
from sqlalchemy import Engine

from fhirhub.api.app import create_app
from fhirhub.config import Settings
from fhirhub.ingest.service import IngestService

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    """The app on the test database, its reference data loaded."""
    load_reference(engine)
    app = create_app(settings, run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.ingest.dispatcher.close()
    app.state.database.engine.dispose()
