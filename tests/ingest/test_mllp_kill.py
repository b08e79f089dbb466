"""``fhirhub mllp`` killed (SIGKILL) between receipt and commit: no AA for what was not stored,
and the message sent again after a restart is stored once.

PostgreSQL only: the test holds a lock on the resources table so that the listener is caught
between keeping the message and storing its data, and kills it there; SQLite has no lock that
stops the store but lets the inbox write through.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from ingest_factories import load_reference
from mllp_client import Client, message
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def listener(db_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "FHIRHUB_DATABASE_URL": db_url,
        "FHIRHUB_AUTO_MIGRATE": "true",
        "FHIRHUB_MAPPINGS_DIR": str(ROOT / "mappings"),
        "FHIRHUB_TERMINOLOGY_DIR": str(ROOT / "terminology"),
        "FHIRHUB_INGEST_LEASE_SECONDS": "1",
    }
    env.pop("FHIRHUB_BROKER_URL", None)
    fhirhub = Path(sys.executable).with_name("fhirhub")
    proc = subprocess.Popen(
        [str(fhirhub), "mllp", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the listener did not start")
            time.sleep(0.2)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def status(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(text("SELECT status FROM inbox_messages ORDER BY id")).scalars().all()
        )


def encounters(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM resources WHERE res_type = 'Encounter'")
            ).scalar_one()
        )


def test_sigkill_between_receipt_and_commit(engine: Engine, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL's table locks")
    load_reference(engine)
    payload = message("KILL1")
    port = free_port()
    blocker = engine.connect()
    blocker.execute(text("LOCK TABLE resources IN ACCESS EXCLUSIVE MODE"))
    try:
        with listener(db_url, port) as proc:
            client = Client(port, timeout=60)
            client.send(payload)
            deadline = time.monotonic() + 60
            while status(engine) != ["processing"]:  # kept and claimed, the store waits
                assert time.monotonic() < deadline, status(engine)
                time.sleep(0.05)
            time.sleep(0.3)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            with pytest.raises(ConnectionError):
                client.receive()  # closed without an acknowledgement
            client.close()
    finally:
        blocker.rollback()
        blocker.close()
    assert encounters(engine) == 0
    assert status(engine) == ["processing"]
    time.sleep(1.2)  # the dead listener's lease runs out
    with listener(db_url, port):
        client = Client(port, timeout=60)
        assert client.exchange(payload).code == "AA"
        assert client.exchange(payload).code == "AA"
        client.close()
    assert status(engine) == ["processed"]
    assert encounters(engine) == 1
