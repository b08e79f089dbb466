"""The server finishes or hands back every message it accepted (``202``), in the embedded default
(no broker: messages are processed in the server process).

A real server is sent a stream of Puskesmas messages on ``POST /ingest/puskesmas`` and stopped
while most of them still wait in its in-process queue: by SIGKILL (a crash: the next server
sweeps what was left ``received``, and claims again what was left ``processing`` once its lease
has run out) or by SIGTERM (a graceful stop: the queue is drained before the process exits).
Every accepted message ends processed, and none is stored twice.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from ingest_factories import city, load_reference, per_patient
from sqlalchemy import Engine, text

from fhirhub.model.instant import now_us
from fhirhub.storage.engine import make_engine
from tests.api.conftest import LiveServer
from tests.conftest import SOURCES_ONLY

pytestmark = pytest.mark.slow
FINAL = ("processed", "rejected")


def payloads(n: int, persons: int = 4) -> tuple[list[bytes], int]:
    """``n`` messages of ``persons`` Patients each (with all their visits), and how many
    Patients they hold: large enough that they arrive faster than they are processed."""
    _, bundles = city()
    groups: list[list[dict[str, Any]]] = []
    for bundle in bundles:  # one Puskesmas's Patients in each message
        parts = per_patient(bundle)
        groups += [parts[k : k + persons] for k in range(0, len(parts) - persons + 1, persons)]
    out = [
        orjson.dumps({**group[0], "entry": [e for part in group for e in part["entry"]]})
        for group in groups[:n]
    ]
    return out, n * persons


def post(server: LiveServer, payload: bytes) -> tuple[int, int]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/ingest/puskesmas",
        data=payload,
        method="POST",
        headers=server.headers,
    )
    req.add_header("Content-Type", "application/fhir+json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, int(json.loads(resp.read())["id"])


def statuses(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, status FROM inbox_messages")).all())  # type: ignore[arg-type]


def finished_after(engine: Engine, instant: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM inbox_messages WHERE processed_at > :t"), {"t": instant}
            ).scalar_one()
        )


def resource_count(engine: Engine, res_type: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(f"SELECT count(*) FROM resources WHERE res_type = :t AND {SOURCES_ONLY}"),
                {"t": res_type},
            ).scalar_one()
        )


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_every_accepted_message_ends_stored_once(
    how: str, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FHIRHUB_INGEST_LEASE_SECONDS", "2")
    monkeypatch.setenv("FHIRHUB_INGEST_SWEEP_INTERVAL", "0.5")
    monkeypatch.delenv("FHIRHUB_BROKER_URL", raising=False)
    engine = make_engine(db_url, pool_size=1)
    load_reference(engine)
    sent, expected_patients = payloads(30, 4)
    server = LiveServer(db_url, 1, tmp_path / "server-0.log").start()
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda p: post(server, p), sent))
        assert server.process is not None
        process = server.process
        signalled = now_us()
        os.killpg(process.pid, getattr(signal, how))  # at once: the last ones are in flight
        process.wait(timeout=120)
        server.process = None
        assert {status for status, _ in answers} == {202}
        accepted = {message_id for _, message_id in answers}
        assert len(accepted) == len(sent)
        left = {i: st for i, st in statuses(engine).items() if st not in FINAL}
        if how == "SIGTERM":  # a graceful stop drains the in-process queue first
            assert left == {}
            assert finished_after(engine, signalled), "nothing was in flight at the stop"
        else:
            assert left, "the crash left nothing to recover"

        restarted = LiveServer(db_url, 1, tmp_path / "server-1.log").start()
        try:
            deadline = time.monotonic() + 90
            while any(st not in FINAL for st in statuses(engine).values()):
                assert time.monotonic() < deadline, statuses(engine)
                time.sleep(0.2)
        finally:
            restarted.stop()

        final = statuses(engine)
        assert set(final) == accepted
        assert set(final.values()) == {"processed"}
        # Each message stored once: one Provenance per message, one Patient per person.
        assert resource_count(engine, "Provenance") == len(accepted)
        assert resource_count(engine, "Patient") == expected_patients
    finally:
        server.kill()
        engine.dispose()


# --- the claim, without a server ------------------------------------------------------------


def test_a_claimed_message_is_handed_out_again_only_once_its_lease_runs_out(
    engine: Engine, settings: Any
) -> None:
    from fhirhub.ingest.service import IngestService
    from fhirhub.storage.inbox_repository import InboxRepository

    load_reference(engine)
    service = IngestService.from_settings(engine, settings)
    try:
        message_id = service.pipeline.receive("puskesmas", payloads(1, 1)[0][0]).id
        now = now_us()
        with engine.begin() as conn:  # a live worker holds it for a minute
            repo = InboxRepository(conn)
            assert repo.claim(message_id, now=now, lease_until=now + 60_000_000, max_attempts=5)
            assert not repo.claim(message_id, now=now, lease_until=now + 1, max_attempts=5)
        assert service.sweep(older_than_seconds=0) == []
        assert service.pipeline.process(message_id).status == "processing"  # not touched
        assert resource_count(engine, "Provenance") == 0

        with engine.begin() as conn:  # ...and dies: its lease runs out
            conn.execute(text("UPDATE inbox_messages SET lease_until = 1"))
        assert service.sweep(older_than_seconds=0) == [message_id]
        row = service.get(message_id)
        assert (row.status, row.attempts, row.lease_until) == ("processed", 2, None)
        assert resource_count(engine, "Provenance") == 1
    finally:
        service.dispatcher.close()


# --- mode=sync under contention --------------------------------------------------------------


def _one_visit_variants(n: int) -> list[bytes]:
    """The same visit ``n`` times, each a different payload (so a message of its own)."""
    (one,), _ = payloads(1, 1)
    bundle = orjson.loads(one)
    return [orjson.dumps({**bundle, "id": f"resend-{k}"}) for k in range(n)]


def test_sync_ingest_of_one_visit_sent_concurrently_is_never_a_500(
    engine: Engine, settings: Any
) -> None:
    from fastapi.testclient import TestClient

    from fhirhub.api.app import create_app

    load_reference(engine)
    app = create_app(settings, run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as client:

        def send(body: bytes) -> Any:
            return client.post("/ingest/puskesmas?mode=sync", content=body)

        variants = _one_visit_variants(8)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, variants))
        for r in answers:
            assert r.status_code in (200, 503), r.text
            if r.status_code == 503:  # kept; sending it again stores it
                assert r.headers["retry-after"]
                assert r.json()["resourceType"] == "OperationOutcome"
        for body, r in zip(variants, answers, strict=True):
            if r.status_code == 503:
                assert send(body).status_code == 200
    app.state.database.engine.dispose()
    assert resource_count(engine, "Patient") == 1


def test_sync_ingest_answers_503_when_storing_fails_for_a_passing_reason(
    engine: Engine, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from fhirhub.api.app import create_app
    from fhirhub.ingest.pipeline import Pipeline, TransientError

    def busy(self: Pipeline, message_id: int) -> Any:
        raise TransientError("IntegrityError")

    load_reference(engine)
    monkeypatch.setattr(Pipeline, "process", busy)
    app = create_app(settings, run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/ingest/puskesmas?mode=sync", content=_one_visit_variants(1)[0])
    app.state.database.engine.dispose()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    assert r.json()["issue"][0]["code"] == "transient"


def test_a_message_being_processed_is_not_replayed(engine: Engine, settings: Any) -> None:
    from fhirhub.errors import FhirError
    from fhirhub.ingest.service import IngestService
    from fhirhub.storage.inbox_repository import InboxRepository

    service = IngestService.from_settings(engine, settings)
    try:
        message_id = service.pipeline.receive("puskesmas", payloads(1, 1)[0][0]).id
        now = now_us()
        with engine.begin() as conn:
            InboxRepository(conn).claim(
                message_id, now=now, lease_until=now + 60_000_000, max_attempts=5
            )
        with pytest.raises(FhirError) as refused:
            service.replay([message_id])
        assert refused.value.status == 409
        assert service.get(message_id).status == "processing"
    finally:
        service.dispatcher.close()
