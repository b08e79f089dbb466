"""The broker as the operations endpoints and commands see it."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhirhub.api.app import create_app
from fhirhub.config import Settings, get_settings
from fhirhub.ingest.queue import TASK_SWEEP, Dispatcher, producer, queue_depth


def test_readyz_checks_a_real_broker(db_url: str, broker_url: str) -> None:
    settings = Settings(database_url=db_url, broker_url=broker_url, broker_queue="fhirhub-ops")
    app = create_app(settings, run_migrations=False)
    with TestClient(app) as client:
        r = client.get("/readyz")
        metrics = client.get("/metrics").text
    app.state.database.engine.dispose()
    assert r.status_code == 200
    assert r.json()["checks"] == {"database": "ok", "schema": "ok", "broker": "ok"}
    assert "fhirhub_ingest_queue_depth" in metrics


def test_queue_depth_counts_the_waiting_messages(broker_url: str) -> None:
    """The depth /metrics reports: the messages sent to the queue and not yet taken."""
    queue = f"fhirhub-depth-{uuid.uuid4().hex[:8]}"
    redis = broker_url.startswith("redis")
    # a queue nobody declared: an empty list on Redis; unknown (None) on RabbitMQ
    assert queue_depth(broker_url, 3600, queue) == (0 if redis else None)
    dispatcher = Dispatcher(broker_url, lambda _id: None, queue=queue)
    try:
        dispatcher.submit([11, 12, 13])
        assert _settled_depth(broker_url, queue, 3) == 3
        dispatcher.submit([14])
        assert _settled_depth(broker_url, queue, 4) == 4
    finally:
        _delete_queue(broker_url, queue)


def test_queue_depth_without_a_broker_is_unknown() -> None:
    assert queue_depth(None) is None
    assert queue_depth("redis://127.0.0.1:1/0") is None  # nothing listens there
    assert queue_depth("amqp://guest:guest@127.0.0.1:1//") is None


def _settled_depth(broker_url: str, queue: str, expected: int) -> int | None:
    """The queue's depth once it shows ``expected`` (or after 10 s): RabbitMQ counts a message
    published on another connection a moment after the publish returns."""
    deadline = time.monotonic() + 10
    depth = queue_depth(broker_url, 3600, queue)
    while depth != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        depth = queue_depth(broker_url, 3600, queue)
    return depth


def _delete_queue(broker_url: str, queue: str) -> None:
    with producer(broker_url, 3600, queue).connection_for_write() as conn:
        channel = conn.default_channel
        if conn.transport.driver_type == "redis":
            channel.client.delete(queue)
        else:
            channel.queue_delete(queue)


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_worker_and_beat_need_a_broker(command: str, monkeypatch) -> None:
    from fhirhub.cli import app

    monkeypatch.delenv("FHIRHUB_BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, [command])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "FHIRHUB_BROKER_URL" in result.output


def test_beat_sweeps_the_inbox_every_minute() -> None:
    from fhirhub.jobs.celery_app import celery_app

    celery_app.loader.import_default_modules()  # what a worker does at start
    entry = celery_app.conf.beat_schedule["sweep-inbox"]  # beside the indicator jobs
    assert entry == {"task": TASK_SWEEP, "schedule": 60.0}
    assert TASK_SWEEP in celery_app.tasks
    assert {"fhirhub.measures.monthly", "fhirhub.measures.surveillance"} <= set(celery_app.tasks)
