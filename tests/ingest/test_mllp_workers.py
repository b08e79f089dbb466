"""``fhirhub mllp --workers 2``: two listener processes on one port (SO_REUSEPORT), every
message acknowledged and stored once, a resend on another connection recognised, and a SIGTERM
to the parent stopping both. PostgreSQL only: two processes writing at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ingest_factories import load_reference
from mllp_client import Client, message
from sqlalchemy import Engine
from test_mllp_kill import ROOT, encounters, free_port, status


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_two_listener_processes_share_one_port(engine: Engine, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("two listener processes write at once: PostgreSQL")
    load_reference(engine)
    port = free_port()
    env = {
        **os.environ,
        "FHIRHUB_DATABASE_URL": db_url,
        "FHIRHUB_MAPPINGS_DIR": str(ROOT / "mappings"),
        "FHIRHUB_TERMINOLOGY_DIR": str(ROOT / "terminology"),
    }
    env.pop("FHIRHUB_BROKER_URL", None)
    fhirhub = Path(sys.executable).with_name("fhirhub")
    cmd = [str(fhirhub), "mllp", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 or not _accepts(port):
            assert proc.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.2)
        time.sleep(1.0)  # both children listening
        clients = [Client(port, timeout=60) for _ in range(6)]
        sent = [message(f"WRK{i}", visit=f"2024/01/05/00010{i}") for i in range(6)]
        for client, payload in zip(clients, sent, strict=True):
            assert client.exchange(payload).code == "AA"
        assert clients[5].exchange(sent[0]).code == "AA"  # a resend, on another connection
        for client in clients:
            client.close()
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert status(engine) == ["processed"] * 6
    assert encounters(engine) == 6


def _accepts(port: int) -> bool:
    try:
        Client(port, timeout=1).close()
    except OSError:
        return False
    return True


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_workers_are_refused_on_sqlite_and_without_a_port(tmp_path: Path) -> None:
    env = {**os.environ, "FHIRHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    fhirhub = str(Path(sys.executable).with_name("fhirhub"))
    for args, says in (
        (["--port", "0", "--workers", "2"], "fixed --port"),
        (["--port", str(free_port()), "--workers", "2"], "needs PostgreSQL"),
    ):
        done = subprocess.run(
            [fhirhub, "mllp", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2 and says in done.stderr + done.stdout, done.stderr
