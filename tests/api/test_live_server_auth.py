"""The real servers the tests start (``LiveServer``) run with ``FHIRHUB_AUTH=on`` by default:
the suite's concurrency, crash, race and client tests pass through the token check."""

from __future__ import annotations

import urllib.error
import urllib.request

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
