"""The pipeline keeps every payload before processing it, processes each once, and keeps the
OperationOutcome of what it rejects until a replay stores it."""

from __future__ import annotations

import orjson
import yaml
from ingest_factories import city, facility_of, load_reference, per_patient
from sqlalchemy import Engine, text

from fhirhub.ingest import provenance
from fhirhub.ingest.service import IngestService
from tests.conftest import SOURCES_ONLY


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT res_type, COUNT(*) FROM resources WHERE {SOURCES_ONLY} GROUP BY res_type")
        ).all()
    return {t: n for t, n in rows}


def small(facility: str = "PKM01", n: int = 1, encounters: int = 2) -> list[bytes]:
    _, bundles = city()
    bundle = next(b for b in bundles if facility_of(b) == facility)
    return [orjson.dumps(b) for b in per_patient(bundle, encounters)[:n]]


def test_a_message_is_stored_once_and_processed_once(service: IngestService, engine: Engine):
    payload = small()[0]
    before = counts(engine)
    first = service.submit("puskesmas", payload)
    assert not first.duplicate
    row = service.get(first.id)
    assert row.status == "processed" and row.attempts == 1 and row.resources
    after = counts(engine)
    again = service.submit("puskesmas", payload)
    assert again.duplicate and again.id == first.id
    assert counts(engine) == after
    assert after["Patient"] == before.get("Patient", 0) + 1
    assert after["Provenance"] == 1
    assert service.pipeline.process(first.id).attempts == 1  # processing again does nothing
    assert service.payload(first.id) == payload


def test_the_same_visits_in_another_message_leave_one_copy(service: IngestService, engine):
    payload = small()[0]
    service.submit("puskesmas", payload)
    after = counts(engine)
    reformatted = orjson.dumps(orjson.loads(payload), option=orjson.OPT_INDENT_2)
    receipt = service.submit("puskesmas", reformatted)
    assert not receipt.duplicate
    assert service.get(receipt.id).status == "processed"
    grown = counts(engine)
    assert grown.pop("Provenance") == after.pop("Provenance") + 1
    assert grown == after


def test_every_resource_names_its_source_and_a_provenance_points_at_the_message(
    service: IngestService, engine: Engine
):
    receipt = service.submit("puskesmas", small("PKM05")[0])
    with engine.connect() as conn:
        bodies = [
            c if isinstance(c, dict) else orjson.loads(c)
            for (c,) in conn.execute(
                text(
                    "SELECT content FROM resources WHERE res_type IN ('Patient','Encounter',"
                    f"'Condition','Observation','Provenance') AND {SOURCES_ONLY}"
                )
            )
        ]
    assert {b["meta"]["source"] for b in bodies} == {provenance.source_uri("puskesmas", "PKM05")}
    (prov,) = [b for b in bodies if b["resourceType"] == "Provenance"]
    assert prov["entity"][0]["what"]["identifier"]["value"] == str(receipt.id)
    assert prov["agent"][0]["who"] == {"reference": "Organization/org-pkm05"}
    assert len(prov["target"]) == len(bodies) - 1
    assert all(t["reference"].split("/")[0] != "urn:uuid:" for t in prov["target"])


def test_a_rejected_message_keeps_its_outcome_and_a_fixed_mapping_replays_it(
    service: IngestService, engine: Engine, mappings_dir
):
    payload = orjson.loads(small("PKM05", encounters=1)[0])
    coding = next(
        e["resource"]["code"]["coding"][0]
        for e in payload["entry"]
        if e["resource"]["resourceType"] == "Condition"
    )
    coding["code"] = "DIARE-BARU"
    receipt = service.submit("puskesmas", orjson.dumps(payload))
    row = service.get(receipt.id)
    assert row.status == "rejected"
    outcome = orjson.loads(row.outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "code-invalid"
    assert outcome["issue"][0]["expression"][0].endswith(".resource.code.coding[0]")
    assert "Patient" not in counts(engine)  # nothing of a rejected message is stored

    table = mappings_dir / "puskesmas" / "pkm05.yaml"
    mapping = yaml.safe_load(table.read_text())
    mapping["local_codes"] = [
        {
            "system": coding["system"],
            "code": "DIARE-BARU",
            "target_system": "http://hl7.org/fhir/sid/icd-10",
            "target_code": "A09",
        }
    ]
    table.write_text(yaml.safe_dump(mapping))
    service.replay([receipt.id])
    row = service.get(receipt.id)
    assert row.status == "processed" and row.outcome is None
    assert counts(engine)["Patient"] == 1


def test_a_payload_that_breaks_the_adapter_is_kept_as_failed(service: IngestService, monkeypatch):
    from adapters.puskesmas import adapter

    def broken(message, context):
        raise RuntimeError("bug")

    monkeypatch.setattr(adapter, "map", broken)
    payload = small()[0]
    receipt = service.submit("puskesmas", payload)
    row = service.get(receipt.id)
    assert row.status == "failed" and row.error == "RuntimeError"
    assert service.payload(receipt.id) == payload
    monkeypatch.undo()
    service.replay([receipt.id])
    assert service.get(receipt.id).status == "processed"


def test_garbage_is_rejected_not_lost(service: IngestService):
    for payload, code in [
        (b"{not json", "structure"),
        (b'{"resourceType": "Patient"}', "structure"),
        (b'{"resourceType": "Bundle", "type": "collection", "entry": []}', "invalid"),
    ]:
        row = service.get(service.submit("puskesmas", payload).id)
        assert row.status == "rejected"
        assert orjson.loads(row.outcome)["issue"][0]["code"] == code
    assert len(service.messages(status="rejected")) == 3


def test_the_sweep_hands_out_what_waits(service: IngestService):
    receipt = service.pipeline.receive("puskesmas", small()[0])  # received, never enqueued
    assert service.get(receipt.id).status == "received"
    assert service.sweep(older_than_seconds=0) == [receipt.id]
    assert service.get(receipt.id).status == "processed"


def test_a_sender_that_disagrees_with_its_records_is_rejected(service: IngestService):
    row = service.get(service.submit("puskesmas", small("PKM01")[0], sender="PKM02").id)
    assert row.status == "rejected"
    assert orjson.loads(row.outcome)["issue"][0]["code"] == "business-rule"


def test_a_message_is_enqueued_only_after_its_commit(engine: Engine, settings, monkeypatch):
    from fhirhub.ingest import queue
    from fhirhub.storage.engine import make_engine
    from fhirhub.storage.inbox_repository import InboxRepository

    load_reference(engine)
    seen: list[tuple[str, int, str | None]] = []
    other = make_engine(settings.database_url, pool_size=1)

    class Producer:
        def send_task(self, name, args, queue):
            with other.connect() as conn:  # another connection sees only committed rows
                row = InboxRepository(conn).get(args[0])
            seen.append((name, args[0], row.status if row else None))

    monkeypatch.setattr(queue, "producer", lambda *a: Producer())
    brokered = settings.model_copy(update={"broker_url": "redis://broker.invalid:6379/0"})
    service = IngestService.from_settings(engine, brokered)
    receipt = service.submit("puskesmas", small()[0])
    service.submit("puskesmas", small()[0])  # waiting already: not sent again
    other.dispose()
    assert seen == [(queue.TASK_PROCESS, receipt.id, "received")]


def test_logs_hold_ids_counts_and_codes_never_patient_data(service: IngestService, caplog):
    import logging

    payload = orjson.loads(small("PKM05")[0])
    patient = payload["entry"][0]["resource"]
    secrets = [i["value"] for i in patient["identifier"]] + [patient["name"][0]["text"]]
    broken = orjson.loads(small("PKM05")[0])
    broken["entry"][0]["resource"]["birthDate"] = "31-12-1999"
    with caplog.at_level(logging.DEBUG):
        ok = service.submit("puskesmas", orjson.dumps(payload))
        bad = service.submit("puskesmas", orjson.dumps(broken))
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("fhirhub"))
    assert f"message={ok.id}" in text and "outcome=processed" in text
    assert f"message={bad.id}" in text and "issues=value" in text
    for secret in secrets:
        assert secret not in text


def test_a_replay_counts_as_an_attempt_and_logs_no_resources(service: IngestService, caplog):
    receipt = service.submit("puskesmas", b'{"resourceType": "Patient"}')
    assert service.get(receipt.id).attempts == 1
    with caplog.at_level("INFO", logger="fhirhub"):
        service.replay([receipt.id])
    row = service.get(receipt.id)
    assert row.status == "rejected" and row.attempts == 2
    finished = [r.getMessage() for r in caplog.records if r.getMessage().startswith("finished")]
    assert finished and "resources=0 " in finished[-1], finished
    for _ in range(service.pipeline.max_attempts + 1):  # a replay always gets its try
        service.replay([receipt.id])
    assert service.get(receipt.id).attempts == service.pipeline.max_attempts
    assert "gave up" not in (service.get(receipt.id).error or "")
