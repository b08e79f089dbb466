"""Fixtures: an app with ``FHIRHUB_AUTH=on`` on each test database (``auth_app``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from auth_app import SERVER_KEY, AuthClient
from auth_keys import ec_key, jwks_text
from fastapi.testclient import TestClient

from fhirhub.api.app import create_app
from fhirhub.auth.clients import ClientStore
from fhirhub.config import Settings


@pytest.fixture
def auth_settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        auth="on",
        auth_signing_keys=jwks_text(ec_key(SERVER_KEY)),
        max_body_bytes=8_000_000,
        auth_rate_limit=0,
    )


@pytest.fixture
def auth_app(auth_settings: Settings) -> Iterator[AuthClient]:
    app = create_app(auth_settings, run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as http:
        client = AuthClient(http, ClientStore(app.state.database.engine))
        yield client
    app.state.database.engine.dispose()
