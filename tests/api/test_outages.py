"""Database outages (issue 10, item 7): 503 with Retry-After while the database is away, and a
frozen database neither freezes the worker nor holds a request for ever."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from fhirhub.api.app import create_app
from fhirhub.config import Settings
from fhirhub.storage.engine import normalise_url
from tests.api.conftest import FHIR_JSON
from tests.api.factories import patient
from tests.api.threaded_server import serving

# Every route family that touches the database.
ROUTES = [
    ("GET", "/fhir/Patient/p1", None),
    ("GET", "/fhir/Patient/p1/_history/1", None),
    ("GET", "/fhir/Patient?family=x", None),
    ("GET", "/fhir/Patient/_history", None),
    ("POST", "/fhir/Patient", patient()),
    ("PUT", "/fhir/Patient/p1", {**patient(), "id": "p1"}),
    ("DELETE", "/fhir/Patient/p1", None),
    ("POST", "/fhir", {"resourceType": "Bundle", "type": "batch", "entry": []}),
    ("POST", "/ingest/puskesmas", {"resourceType": "Bundle", "type": "transaction"}),
    ("GET", "/admin/inbox", None),
    ("GET", "/admin/inbox/1", None),
]


@pytest.fixture(params=["postgresql", "sqlite"])
def unreachable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    url = (
        "postgresql+psycopg://postgres@127.0.0.1:1/fhirhub"
        if request.param == "postgresql"
        else f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite3'}"
    )
    app = create_app(Settings(database_url=url), run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.ingest.dispatcher.close()
    app.state.database.engine.dispose()


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_an_unreachable_database_is_503_with_retry_after(
    unreachable: TestClient, method: str, path: str, body: dict | None
) -> None:
    r = unreachable.request(method, path, json=body, headers=FHIR_JSON if body else None)
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"].isdigit()
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"
    assert r.headers["x-request-id"] in outcome["issue"][0]["diagnostics"]


def test_health_and_metadata_answer_while_the_database_is_away(unreachable: TestClient) -> None:
    assert unreachable.get("/healthz").status_code == 200
    assert unreachable.get("/fhir/metadata").status_code == 200


# --- a frozen database ---------------------------------------------------------------------


@pytest.fixture
def postgres_only(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("a frozen database is simulated on PostgreSQL only")
    return db_url


def test_a_locked_table_does_not_freeze_the_worker(postgres_only: str) -> None:
    """A read by id waits behind ``LOCK TABLE resources``: meanwhile /healthz and /metadata
    answer, and the read ends at the statement timeout with 503."""
    settings = Settings(database_url=postgres_only, db_statement_timeout=2.0, search_timeout=5.0)
    app = create_app(settings, run_migrations=False)
    locker = create_engine(normalise_url(postgres_only))
    try:
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
            pid = http.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
            assert http.get(f"/fhir/Patient/{pid}").status_code == 200  # a pooled connection
            answers: dict[str, httpx.Response] = {}
            with locker.begin() as conn:
                conn.exec_driver_sql("LOCK TABLE resources IN ACCESS EXCLUSIVE MODE")
                stuck = {
                    name: threading.Thread(
                        target=lambda n=name, u=url: answers.__setitem__(
                            n, httpx.get(base + u, timeout=30)
                        )
                    )
                    for name, url in (
                        ("read", f"/fhir/Patient/{pid}"),
                        ("search", "/fhir/Patient?family=x"),
                    )
                }
                started = time.monotonic()
                for thread in stuck.values():
                    thread.start()
                time.sleep(0.3)
                assert not answers, "the requests should wait for the lock"
                for path in ("/healthz", "/fhir/metadata", "/healthz"):
                    t0 = time.monotonic()
                    assert http.get(path).status_code == 200
                    assert time.monotonic() - t0 < 1.0, path
                for thread in stuck.values():
                    thread.join(15)
                elapsed = time.monotonic() - started
            for name, r in answers.items():
                assert r.status_code == 503, (name, r.text)
                assert r.headers["retry-after"].isdigit()
                assert r.json()["issue"][0]["code"] == "timeout"
            assert set(answers) == {"read", "search"}
            assert elapsed < 8
            # and the server is well afterwards
            assert http.get(f"/fhir/Patient/{pid}").status_code == 200
    finally:
        locker.dispose()
        app.state.ingest.dispatcher.close()
        app.state.database.engine.dispose()


class StallingProxy:
    """A TCP proxy to PostgreSQL that can stop forwarding (the connections stay open): a
    database that neither answers nor fails."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.forwarding.wait()
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        """Close every connection for real: ``shutdown`` sends the FIN and wakes the threads
        blocked on the sockets. ``close`` alone does neither while a thread is blocked in
        ``recv`` or ``accept`` (Linux), so PostgreSQL kept a backend stalled mid-statement,
        holding its locks, and the next test's TRUNCATE waited 11 minutes for it."""
        self.forwarding.set()
        for s in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_a_silent_database_ends_in_a_timeout_answer(postgres_only: str) -> None:
    """The database stops answering at all (a frozen network): the read and the search are
    answered 503 at the request timeout, and /healthz all along."""
    from sqlalchemy.engine import make_url

    url = make_url(normalise_url(postgres_only))
    proxy = StallingProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(database_url=proxied, search_timeout=1.0)
    app = create_app(settings, run_migrations=False)
    try:
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
            pid = http.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
            assert http.get(f"/fhir/Patient/{pid}").status_code == 200
            proxy.forwarding.clear()
            for path in (f"/fhir/Patient/{pid}", "/fhir/Patient?family=x"):
                t0 = time.monotonic()
                r = http.get(path)
                assert r.status_code == 503, (path, r.text)
                assert r.json()["issue"][0]["code"] == "timeout"
                assert time.monotonic() - t0 < 6, path
                assert http.get("/healthz").status_code == 200
    finally:
        proxy.close()
        app.state.ingest.dispatcher.close()
        app.state.database.engine.dispose()
