"""Group commit: several messages kept, claimed and stored together (``Pipeline.process_many``,
as the MLLP listener does with the messages of its connections). Each message's data is in a
savepoint of its own, so a rejected message rolls back only itself; a batch that fails for any
other reason is stored message by message, losing none."""

from __future__ import annotations

import threading
import time

import pytest
from mllp_client import Client, message, oru, running
from sql_statements import statements_run
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


def test_a_batch_waits_a_moment_for_the_other_connections_messages(
    service: IngestService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The messages of 3 connections, sent 0.2 s apart, make one batch when the listener may
    linger that long; a connection alone is answered without lingering."""
    from fhirhub.ingest import storing

    sizes: list[int] = []
    original = storing.store_together

    def spy(conn: object, items: list[object], base_url: str) -> object:
        sizes.append(len(items))
        return original(conn, items, base_url)  # type: ignore[arg-type]

    monkeypatch.setattr(storing, "store_together", spy)
    with running(service.pipeline, linger_seconds=5.0) as (listener, port):
        clients = [Client(port) for _ in range(3)]
        try:
            deadline = time.monotonic() + 10
            while listener.connections < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            for n, client in enumerate(clients):
                client.send(oru(f"L{n}", obx=1, mrn=f"00070{n}"))
                time.sleep(0.2)
            assert [c.receive().code for c in clients] == ["AA"] * 3
        finally:
            for c in clients:
                c.close()
        assert sizes == [3]
        while listener.connections and time.monotonic() < deadline + 10:
            time.sleep(0.01)  # the three are gone: one connection is alone
        alone = Client(port)
        try:
            started = time.monotonic()
            assert alone.exchange(oru("L9", obx=1, mrn="000709")).code == "AA"
            assert time.monotonic() - started < 4.0
        finally:
            alone.close()
    assert observations(engine) == 4


def test_a_batch_is_kept_in_one_insert_its_duplicates_known(
    service: IngestService, engine: Engine
) -> None:
    """``receive_many`` keeps a batch with one INSERT (and one SELECT for what was kept
    before); a message sent twice in the batch, or kept by an earlier batch, is a duplicate
    with the first one's id and status."""
    pipeline = service.pipeline
    earlier = oru("D0", obx=1)
    [first] = keep(pipeline, earlier)
    pipeline.process_many([first])
    one, two = oru("D1", obx=1), oru("D2", obx=1)
    with statements_run(engine) as run:
        receipts = pipeline.receive_many(
            "rsud", [(p, "RSUD01") for p in (one, two, one, earlier)], content_type=HL7
        )
    statements = [s.split()[0] for s in run]
    assert statements.count("INSERT") == 1
    assert [r.duplicate for r in receipts] == [False, False, True, True]
    assert receipts[2].id == receipts[0].id and receipts[2].status == "received"
    assert receipts[3].id == first and receipts[3].status == "processed"
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT COUNT(*) FROM inbox_messages")).scalar_one()
    assert kept == 3


def test_a_batch_claims_what_waits_and_leaves_the_rest_to_process_alone(
    service: IngestService, engine: Engine
) -> None:
    """One guarded UPDATE claims a batch's waiting messages; one finished already (a
    duplicate sent again) is left to ``process``, which stores nothing twice."""
    pipeline = service.pipeline
    [done] = keep(pipeline, oru("C0", obx=2))
    pipeline.process_many([done])
    stored = observations(engine)
    fresh = keep(pipeline, oru("C1", obx=1), oru("C2", obx=1))
    rows = pipeline.process_many([fresh[0], done, fresh[1]])
    assert {i: r.status for i, r in rows.items()} == dict.fromkeys([*fresh, done], "processed")
    assert observations(engine) == stored + 2
    with engine.connect() as conn:
        attempts = dict(conn.execute(text("SELECT id, attempts FROM inbox_messages")).all())
    assert attempts == {done: 1, fresh[0]: 1, fresh[1]: 1}
