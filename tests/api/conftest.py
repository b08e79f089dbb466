"""Fixtures for the HTTP API: an app and client on each test database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhirhub.api.app import create_app
from fhirhub.config import Settings

FHIR_JSON = {"content-type": "application/fhir+json"}


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, max_body_bytes=8_000_000)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.database.engine.dispose()


# --- a real server process (uvicorn) on the test database ----------------------------------


class LiveServer:
    """``uvicorn fhirhub.api.asgi:app`` as a child process on ``db_url``, on a free port.

    Started in a session of its own so that :meth:`kill` (SIGKILL, as a crash) takes every
    worker with it.
    """

    def __init__(self, db_url: str, workers: int = 1, log_path: Path | None = None) -> None:
        self.db_url = db_url
        self.workers = workers
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self) -> LiveServer:
        self.port = _free_port()
        env = {**os.environ, "FHIRHUB_DATABASE_URL": self.db_url, "FHIRHUB_LOG_LEVEL": "WARNING"}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        cmd = [sys.executable, "-m", "uvicorn", "fhirhub.api.asgi:app", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning"]
        self.process = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if log is not subprocess.DEVNULL:
            log.close()
        self._wait_ready()
        return self

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
