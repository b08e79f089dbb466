"""An app and client on each test database, for the indicator operations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fhirhub.api.app import create_app
from fhirhub.config import Settings, get_settings


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url), run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.database.engine.dispose()


@pytest.fixture(autouse=True)
def patient_index(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The indicator tests hold the patient index's answer fixed: they write the Person resources
    themselves (a perfect index), which the running index would refuse, so it is off for them.
    Tests marked ``index_on`` let the real index link the records instead."""
    mode = "on" if request.node.get_closest_marker("index_on") else "off"
    monkeypatch.setenv("FHIRHUB_PATIENT_INDEX", mode)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
