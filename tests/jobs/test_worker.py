"""Celery workers on real brokers: a worker killed with SIGKILL in the middle of a message
leaves it to be delivered again, and the data is stored exactly once; a message sent twice is
stored once. On PostgreSQL, with Redis and with RabbitMQ."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from ingest_factories import city, facility_of, load_reference, per_patient
from sqlalchemy import Engine, text

from fhirhub.config import Settings
from fhirhub.ingest.queue import queue_depth
from fhirhub.ingest.service import IngestService
from tests.conftest import SOURCES_ONLY

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")
FHIRHUB = str(Path(sys.executable).parent / "fhirhub")
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
# Redis: seconds before an unacknowledged task is delivered again (the default is an hour).
VISIBILITY = 2


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Workers:
    """Starts Celery workers as subprocesses of their own session (so SIGKILL takes them whole)."""

    def __init__(self, env: dict[str, str], queue: str, log_dir: Path) -> None:
        self.env, self.queue, self.log_dir = env, queue, log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, via_cli: bool = False) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"worker-{len(self.procs)}.log").open("wb") as log:
            proc = self._popen(log, via_cli)
        self.procs.append(proc)
        return proc

    def _popen(self, log: object, via_cli: bool) -> subprocess.Popen[bytes]:
        name = f"{self.queue}-{len(self.procs)}@%h"
        if via_cli:  # ``fhirhub worker``: the queue comes from FHIRHUB_BROKER_QUEUE
            cmd = [FHIRHUB, "worker", "--pool", "solo", "--concurrency", "1"]
        else:
            cmd = [CELERY, "-A", "fhirhub.jobs.celery_app", "worker", "--pool", "solo",
                   "--loglevel", "INFO", "-Q", self.queue, "--without-gossip",
                   "--without-mingle", "--without-heartbeat", "-n", name]  # fmt: skip
        return subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:  # its work is done or does not matter any more
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture
def setup(
    engine: Engine, db_url: str, broker_url: str, tmp_path: Path
) -> Iterator[tuple[IngestService, Workers]]:
    load_reference(engine)
    queue = f"fhirhub-test-{uuid.uuid4().hex[:8]}"
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    settings = Settings(
        database_url=db_url,
        broker_url=broker_url,
        broker_queue=queue,
        broker_visibility_timeout=VISIBILITY,
        mappings_dir=mappings,
        terminology_dir=ROOT / "terminology",
    )
    env = {
        **os.environ,
        "FHIRHUB_DATABASE_URL": db_url,
        "FHIRHUB_BROKER_URL": broker_url,
        "FHIRHUB_BROKER_QUEUE": queue,
        "FHIRHUB_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "FHIRHUB_INGEST_LEASE_SECONDS": "2",  # a dead worker's claim runs out soon
        "FHIRHUB_MAPPINGS_DIR": str(mappings),
        "FHIRHUB_TERMINOLOGY_DIR": str(ROOT / "terminology"),
    }
    workers = Workers(env, queue, tmp_path)
    service = IngestService.from_settings(engine, settings)
    try:
        yield service, workers
    finally:
        workers.stop()
        _purge(broker_url, queue)


def _purge(broker_url: str, queue: str) -> None:
    from kombu import Connection

    with Connection(broker_url) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(queue)


def count(engine: Engine, res_type: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(f"SELECT COUNT(*) FROM resources WHERE res_type = :t AND {SOURCES_ONLY}"),
                {"t": res_type},
            ).scalar_one()
        )


def big_bundle() -> tuple[bytes, int]:
    _, bundles = city()
    whole = next(b for b in bundles if facility_of(b) == "PKM04")
    parts = per_patient(whole)[:30]
    bundle = {**whole, "entry": [e for part in parts for e in part["entry"]]}
    encounters = sum(1 for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    return orjson.dumps(bundle), encounters


def test_a_worker_killed_mid_message_leaves_exactly_one_copy(setup, engine: Engine):
    service, workers = setup
    payload, encounters = big_bundle()
    blocker = engine.connect()
    blocked = blocker.begin()
    # Writes to the resources table wait behind this lock: the worker is caught mid-message.
    blocker.execute(text("LOCK TABLE resources IN SHARE MODE"))
    try:
        first = workers.start()
        receipt = service.submit("puskesmas", payload)

        def stuck() -> bool:
            with engine.connect() as conn:
                waiting = conn.execute(
                    text("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                         " AND wait_event_type = 'Lock'")
                ).scalar_one()  # fmt: skip
            return bool(waiting)

        wait_for(stuck, 60, "the worker to wait on the lock")
        delivered_before = time.monotonic()
        assert service.get(receipt.id).attempts == 1
        workers.kill(first)
    finally:
        blocked.rollback()
        blocker.close()
    assert service.get(receipt.id).status == "processing"  # claimed by the dead worker
    # Redis: a worker looks for tasks unacknowledged longer than the visibility timeout when it
    # starts, then only every ~100 s (kombu scans every 10th tick of 10 s). Start the new one
    # once the task is past the timeout, so that its first look finds it.
    time.sleep(max(0.0, delivered_before + VISIBILITY + 0.5 - time.monotonic()))
    workers.start()
    wait_for(lambda: service.get(receipt.id).status == "processed", 60, "redelivery")
    row = service.get(receipt.id)
    assert row.attempts == 2
    assert count(engine, "Encounter") == encounters
    assert count(engine, "Provenance") == 1


def test_the_same_bundle_sent_twice_is_stored_once(setup, engine: Engine):
    service, workers = setup
    payload, encounters = big_bundle()
    first = service.submit("puskesmas", payload)
    second = service.submit("puskesmas", payload)
    assert second.duplicate and second.id == first.id
    assert queue_depth(service.dispatcher.broker_url, 3, service.dispatcher.queue) == 1
    workers.start(via_cli=True)
    wait_for(lambda: service.get(first.id).status == "processed", 120, "processing")
    service.dispatcher.submit([first.id])  # a duplicate delivery changes nothing either
    wait_for(
        lambda: queue_depth(service.dispatcher.broker_url, 3, service.dispatcher.queue) == 0,
        30,
        "the queue to drain",
    )
    time.sleep(1)
    assert service.get(first.id).attempts == 1
    assert count(engine, "Encounter") == encounters
    assert count(engine, "Provenance") == 1
