"""Fixtures for the HTTP API: an app and client on each test database."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fhirhub.api.app import create_app
from fhirhub.config import Settings

FHIR_JSON = {"content-type": "application/fhir+json"}


LIVE_CLIENT = "live-server-admin"


@functools.cache
def _test_signing_keys() -> str:
    """A signing key for the servers of this test session (generated, never stored)."""
    from joserfc import jwk

    key = jwk.generate_key("EC", "P-256", parameters={"kid": "live-server-1"})
    return json.dumps({"keys": [key.as_dict(private=True)]})


@pytest.fixture
def settings(db_url: str) -> Settings:
    """The API tests' app: ``FHIRHUB_AUTH=on``, as a deployed server runs (the ``client``
    fixture sends an admin client's token with every request)."""
    return Settings(
        database_url=db_url,
        max_body_bytes=8_000_000,
        auth="on",
        auth_signing_keys=_test_signing_keys(),
        auth_rate_limit=0,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        if settings.auth == "on":
            c.headers["authorization"] = f"Bearer {_admin_token(app, str(c.base_url))}"
        yield c
    app.state.database.engine.dispose()


TEST_CLIENT = "api-tests-admin"


@functools.cache
def _client_jwks() -> dict[str, Any]:
    """The public key the API tests' client registers (it never signs anything here)."""
    from joserfc import jwk

    key = jwk.generate_key("EC", "P-256", parameters={"kid": "api-tests-client-1"})
    return {"keys": [key.as_dict(private=False)]}


def _admin_token(app: FastAPI, base: str) -> str:
    """A token of an ``admin`` client for the TestClient's base URL. The client is registered
    with a JWKS, not a secret: a test's registration hashes nothing (scrypt is slow by
    design), and the token is issued directly, as ``/auth/token`` would."""
    from fhirhub.auth.clients import ClientStore
    from fhirhub.auth.roles import Role

    registered, _ = ClientStore(app.state.database.engine).add(
        TEST_CLIENT, Role.admin, jwks=_client_jwks()
    )
    origin = base.rstrip("/")
    issuer = app.state.auth.issuer(f"{origin}/auth", f"{origin}/fhir")
    value, _ = issuer.issue(TEST_CLIENT, scope=registered.scope, role=Role.admin.value)
    return str(value)


# --- a real server process (uvicorn) on the test database ----------------------------------


class LiveServer:
    """``uvicorn fhirhub.api.asgi:app`` as a child process on ``db_url``, on a free port, with
    ``FHIRHUB_AUTH=on`` unless ``auth`` is false: an ``admin`` client is registered in the
    database and its token sent by :attr:`headers` (every request of a test must carry them).

    Started in a session of its own so that :meth:`kill` (SIGKILL, as a crash) takes every
    worker with it.
    """

    def __init__(
        self, db_url: str, workers: int = 1, log_path: Path | None = None, auth: bool = True
    ) -> None:
        self.db_url = db_url
        self.workers = workers
        self.log_path = log_path
        self.auth = auth
        self.port = 0
        self.token = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of this server's admin client (none with auth off)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _register(self) -> str:
        """The admin client's secret: registered, or a new one for a client registered by an
        earlier server on this database."""
        from fhirhub.auth.clients import ClientStore
        from fhirhub.auth.roles import Role
        from fhirhub.storage.engine import make_engine

        engine = make_engine(self.db_url, pool_size=1)
        try:
            store = ClientStore(engine)
            if store.get(LIVE_CLIENT) is None:
                _, secret = store.add(LIVE_CLIENT, Role.admin)
            else:
                _, secret = store.rotate(LIVE_CLIENT)
        finally:
            engine.dispose()
        assert secret is not None
        return secret

    def _fetch_token(self, secret: str) -> str:
        basic = base64.b64encode(f"{LIVE_CLIENT}:{secret}".encode()).decode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/auth/token",
            data=b"grant_type=client_credentials",
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Basic {basic}",
            },
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return str(json.loads(resp.read())["access_token"])

    def start(self) -> LiveServer:
        self.port = _free_port()
        env = {**os.environ, "FHIRHUB_DATABASE_URL": self.db_url, "FHIRHUB_LOG_LEVEL": "WARNING"}
        secret = ""
        if self.auth:
            env.update(
                FHIRHUB_AUTH="on",
                FHIRHUB_AUTH_SIGNING_KEYS=_test_signing_keys(),
                FHIRHUB_AUTH_RATE_LIMIT="0",
                # each buffered AuditEvent (the token request's) is stored at once, so that no
                # later store of it surprises a test counting rows or watching for writes
                FHIRHUB_AUDIT_FLUSH_EVERY="1",
            )
            secret = self._register()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        cmd = [sys.executable, "-m", "uvicorn", "fhirhub.api.asgi:app", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning"]
        self.process = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if log is not subprocess.DEVNULL:
            log.close()
        self._wait_ready()
        if self.auth:
            self._token_audited(secret)
        return self

    def _token_audited(self, secret: str) -> None:
        """Fetch the admin client's token and wait until the token request's AuditEvent is
        stored."""
        from sqlalchemy import text

        from fhirhub.storage.engine import make_engine

        query = text("SELECT count(*) FROM resources WHERE res_type = 'AuditEvent'")
        engine = make_engine(self.db_url, pool_size=1)
        try:
            with engine.connect() as conn:
                before = conn.execute(query).scalar_one()
                conn.rollback()
                self.token = self._fetch_token(secret)
                deadline = time.monotonic() + 30
                while conn.execute(query).scalar_one() == before:
                    assert time.monotonic() < deadline, "the token request was not audited"
                    conn.rollback()  # a fresh snapshot for the next look
                    time.sleep(0.02)
        finally:
            engine.dispose()

    def _wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}{self._log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not answer /healthz in {timeout}s{self._log()}")

    def _log(self) -> str:
        if self.log_path and self.log_path.exists():
            return ":\n" + self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def kill(self) -> None:
        """SIGKILL the server and its workers: no shutdown, no rollback, as a crash."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server_factory(db_url: str, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real servers on the test database: ``live_server_factory(workers=2)``."""
    servers: list[LiveServer] = []

    def start(workers: int = 1) -> LiveServer:
        server = LiveServer(db_url, workers, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    """One real server process (one worker) on the test database."""
    return live_server_factory()
