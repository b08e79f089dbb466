"""Runaway searches (issue 10, item 2): caps on parameters, values, bodies and included
resources; a timeout that cancels the query in the database; cancel when the client goes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, create_engine, text

from fhirhub.api.app import create_app
from fhirhub.config import Settings
from fhirhub.services import search as search_service
from fhirhub.storage.engine import is_postgres, normalise_url
from tests.api.conftest import FHIR_JSON
from tests.api.factories import observation, patient
from tests.api.threaded_server import serving, until


def _app_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.database.engine.dispose()


@pytest.fixture
def limited(db_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=db_url,
        search_max_parameters=10,
        search_max_values=20,
        search_max_included=3,
        max_search_body_bytes=2000,
        search_timeout=1.0,
    )
    yield from _app_client(settings)


def test_500_repeated_parameters_are_refused_with_the_cap_named(client: TestClient) -> None:
    query = "&".join(f"family=x{i}" for i in range(500))
    started = time.monotonic()
    r = client.get(f"/fhir/Patient?{query}")
    assert time.monotonic() - started < 2
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert issue["code"] == "too-costly"
    assert "FHIRHUB_SEARCH_MAX_PARAMETERS" in issue["diagnostics"]
    assert "500" in issue["diagnostics"]


def test_parameters_up_to_the_cap_are_searched(limited: TestClient) -> None:
    limited.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)
    ok = limited.get("/fhir/Patient?" + "&".join(["family=Wa Ode Sitti"] * 10))
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["entry"]) == 1
    over = limited.get("/fhir/Patient?" + "&".join(["family=Wa Ode Sitti"] * 11))
    assert over.status_code == 400
    assert "at most 10 parameters" in over.json()["issue"][0]["diagnostics"]


def test_comma_separated_values_are_capped(limited: TestClient) -> None:
    assert limited.get("/fhir/Patient?family=" + ",".join("x" * 20)).status_code == 200
    r = limited.get("/fhir/Patient?family=" + ",".join("x" * 21))
    assert r.status_code == 400
    assert "FHIRHUB_SEARCH_MAX_VALUES" in r.json()["issue"][0]["diagnostics"]


def test_post_search_counts_its_form_parameters_too(limited: TestClient) -> None:
    form = "&".join(f"family=x{i}" for i in range(11))
    r = limited.post(
        "/fhir/Patient/_search",
        content=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400
    assert "FHIRHUB_SEARCH_MAX_PARAMETERS" in r.json()["issue"][0]["diagnostics"]


def test_post_search_body_is_limited(limited: TestClient) -> None:
    form = "family=" + "x" * 3000
    r = limited.post(
        "/fhir/Patient/_search",
        content=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert r.json()["issue"][0]["code"] == "too-costly"
    # streamed without a Content-Length: counted as it arrives
    r = limited.post(
        "/fhir/Patient/_search",
        content=iter([b"family=", b"x" * 1500, b"x" * 1500]),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    # an empty form body is fine: the parameters may all be in the URL
    r = limited.post(
        "/fhir/Patient/_search?family=x",
        content=b"",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200


def test_included_resources_are_capped_and_the_bundle_says_so(limited: TestClient) -> None:
    pid = limited.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    for value in range(5):
        limited.post(
            "/fhir/Observation", json=observation(f"Patient/{pid}", value), headers=FHIR_JSON
        )
    r = limited.get("/fhir/Patient?_revinclude=Observation:subject")
    assert r.status_code == 200
    entries = r.json()["entry"]
    modes = [e["search"]["mode"] for e in entries]
    assert modes.count("match") == 1
    assert modes.count("include") == 3
    outcome = [e["resource"] for e in entries if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    assert outcome[0]["issue"][0]["severity"] == "warning"
    assert "FHIRHUB_SEARCH_MAX_INCLUDED" in outcome[0]["issue"][0]["diagnostics"]
    # within the cap: no warning
    r = limited.get(
        f"/fhir/Observation?subject=Patient/{pid}&_count=1&_include=Observation:subject"
    )
    assert [e["search"]["mode"] for e in r.json()["entry"]] == ["match", "include"]


# --- the timeout and the client's disconnect -----------------------------------------------


def _slow_statement(conn: Connection) -> str:
    """A statement that runs for about a minute unless cancelled."""
    if is_postgres(conn):
        return "SELECT pg_sleep(60) /* fhirhub-slow-search */"
    return (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000000) "
        "SELECT count(*) FROM n"
    )


@pytest.fixture
def slow_search(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A test-only hook: every search runs a statement that takes a minute."""
    state: dict[str, Any] = {"started": threading.Event(), "ended": threading.Event()}

    def search(conn: Connection, **_: Any) -> dict[str, Any]:
        state["started"].set()
        try:
            conn.exec_driver_sql(_slow_statement(conn))
        finally:
            state["ended"].set()
        return {"resourceType": "Bundle", "type": "searchset"}

    monkeypatch.setattr(search_service, "search", search)
    return state


def _slow_queries(db_url: str) -> int:
    if not db_url.startswith("postgresql"):
        return 0
    engine = create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                        "AND query LIKE '%fhirhub-slow-search%' AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_slow_search_is_cancelled_at_the_timeout(
    limited: TestClient, slow_search: dict[str, Any], db_url: str
) -> None:
    started = time.monotonic()
    r = limited.get("/fhir/Patient?family=x")
    elapsed = time.monotonic() - started
    assert r.status_code == 503
    assert r.headers["retry-after"].isdigit()
    issue = r.json()["issue"][0]
    assert issue["code"] == "timeout"
    assert "FHIRHUB_SEARCH_TIMEOUT" in issue["diagnostics"]
    assert elapsed < 4, elapsed
    assert slow_search["ended"].is_set()
    assert _slow_queries(db_url) == 0


def test_a_search_is_cancelled_when_the_client_goes(
    db_url: str, slow_search: dict[str, Any]
) -> None:
    """A real server (uvicorn, in a thread): the client sends a search and hangs up; the
    statement stops long before the (30 s) timeout."""
    app = create_app(Settings(database_url=db_url, search_timeout=30.0), run_migrations=False)
    try:
        with serving(app) as url:
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET /fhir/Patient?family=x HTTP/1.1\r\nHost: test\r\n\r\n")
                assert slow_search["started"].wait(5)
                if db_url.startswith("postgresql"):
                    assert until(lambda: _slow_queries(db_url) == 1, 5)
            started = time.monotonic()
            assert slow_search["ended"].wait(10)
            assert time.monotonic() - started < 5
            assert _slow_queries(db_url) == 0
    finally:
        app.state.database.engine.dispose()


def test_a_slow_history_is_cancelled_at_the_timeout_too(
    limited: TestClient, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    from fhirhub.services import history

    def slow(repo: Any, **_: Any) -> dict[str, Any]:
        repo.conn.exec_driver_sql(_slow_statement(repo.conn))
        return {"resourceType": "Bundle", "type": "history"}

    monkeypatch.setattr(history, "history", slow)
    started = time.monotonic()
    r = limited.get("/fhir/Patient/_history")
    assert r.status_code == 503
    assert r.json()["issue"][0]["code"] == "timeout"
    assert time.monotonic() - started < 4
    assert _slow_queries(db_url) == 0
