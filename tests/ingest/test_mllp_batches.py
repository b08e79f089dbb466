"""Group commit: several messages kept, claimed and stored together (``Pipeline.process_many``,
as the MLLP listener does with the messages of its connections). Each message's data is in a
savepoint of its own, so a rejected message rolls back only itself; a batch that fails for any
other reason is stored message by message, losing none."""

from __future__ import annotations

import threading

import pytest
from mllp_client import Client, message, oru, running
from sqlalchemy import Engine, text

from fhirhub.ingest.pipeline import Pipeline
from fhirhub.ingest.service import IngestService

HL7 = "application/hl7-v2"


def keep(pipeline: Pipeline, *payloads: bytes) -> list[int]:
    receipts = pipeline.receive_many("rsud", [(p, "RSUD01") for p in payloads], content_type=HL7)
    return [r.id for r in receipts]


def observations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM resources WHERE res_type = 'Observation'")
            ).scalar_one()
        )


def test_a_rejected_message_rolls_back_only_itself(service: IngestService, engine: Engine) -> None:
    pipeline = service.pipeline
    bad = message("B1", facility="NOWHERE")  # no mapping table for its facility: rejected
    ids = keep(pipeline, oru("G1", obx=3), bad, oru("G2", obx=2, mrn="000456"))
    rows = pipeline.process_many(ids)
    assert [rows[i].status for i in ids] == ["processed", "rejected", "processed"]
    assert observations(engine) == 5
    assert rows[ids[1]].outcome is not None and "MSH[1]-4" in rows[ids[1]].outcome
    # Processed again: finished messages are left as they are, nothing is stored twice.
    again = pipeline.process_many(ids)
    assert [again[i].status for i in ids] == ["processed", "rejected", "processed"]
    assert observations(engine) == 5


def test_a_batch_that_fails_is_stored_message_by_message(
    service: IngestService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = service.pipeline
    ids = keep(pipeline, oru("F1", obx=1), oru("F2", obx=2, mrn="000456"))

    def broken(claimed: object) -> dict[int, str]:
        raise RuntimeError("a bug in the batch")

    monkeypatch.setattr(pipeline, "_process_batch", broken)
    rows = pipeline.process_many(ids)
    assert [rows[i].status for i in ids] == ["processed", "processed"]
    assert [rows[i].attempts for i in ids] == [1, 1]  # the claim is the batch's, not redone
    assert observations(engine) == 3


def test_concurrent_connections_are_committed_together_and_each_acknowledged(
    service: IngestService, engine: Engine
) -> None:
    codes: list[str] = []
    lock = threading.Lock()

    def send(port: int, n: int) -> None:
        client = Client(port)
        try:
            for k in range(5):
                ack = client.exchange(oru(f"C{n}-{k}", obx=1, mrn=f"{n:06d}"))
                with lock:
                    codes.append(ack.code)
        finally:
            client.close()

    with running(service.pipeline) as (_, port):
        threads = [threading.Thread(target=send, args=(port, n)) for n in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert codes == ["AA"] * 20
    assert observations(engine) == 20
