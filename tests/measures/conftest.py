"""An app and client on each test database, for the indicator operations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fhirhub.api.app import create_app
from fhirhub.config import Settings


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url), run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.database.engine.dispose()
