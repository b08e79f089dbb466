"""The servers the API tests start run with ``FHIRHUB_AUTH=on`` by default: the real ones
(``LiveServer``: the concurrency, crash, race and client tests) and the ``client`` fixture's
app (the rest of ``tests/api``), each request with an admin client's token."""

from __future__ import annotations

import urllib.error
import urllib.request

from fastapi.testclient import TestClient

from tests.api.conftest import LiveServer


def _status(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, headers={"Accept": "application/fhir+json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_the_live_server_asks_for_a_token(live_server: LiveServer) -> None:
    assert live_server.headers["Authorization"].startswith("Bearer ")
    assert _status(f"{live_server.base}/Patient", {}) == 401
    assert _status(f"{live_server.base}/Patient", live_server.headers) == 200
    assert _status(f"{live_server.base}/metadata", {}) == 200  # public


def test_the_api_tests_app_asks_for_a_token_too(client: TestClient) -> None:
    assert client.app.state.auth is not None  # type: ignore[attr-defined]
    refused = client.get("/fhir/Patient", headers={"authorization": "Bearer not-a-token"})
    assert refused.status_code == 401
    assert client.get("/fhir/Patient").status_code == 200  # the fixture's admin token
