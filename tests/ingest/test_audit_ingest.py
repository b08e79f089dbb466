"""The audit trail of ingest (issue 13): every message stored or rejected has its AuditEvent
(DICOM 110107 Import), in the transaction that stores it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from audit_refusal import drop_refusal, refuse_audit_rows
from fastapi.testclient import TestClient
from ingest_factories import city, facility_of, load_reference, per_patient
from sqlalchemy import Engine, text

from fhirhub.api.app import create_app
from fhirhub.config import Settings
from fhirhub.ingest.pipeline import TransientError
from fhirhub.ingest.service import IngestService
from fhirhub.services import audit

FHIR_JSON = {"content-type": "application/fhir+json"}


def payload(facility: str = "PKM01", k: int = 0) -> bytes:
    _, bundles = city()
    bundle = next(b for b in bundles if facility_of(b) == facility)
    return orjson.dumps(per_patient(bundle, 1)[k])


def events(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT content FROM resources WHERE res_type = 'AuditEvent' ORDER BY pk")
        ).all()
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


def inbox_ids(event: dict[str, Any]) -> list[str]:
    return [
        e["what"]["identifier"]["value"]
        for e in event.get("entity", [])
        if e.get("what", {}).get("identifier", {}).get("system") == audit.INBOX_SYSTEM
    ]


def references(event: dict[str, Any]) -> list[str]:
    found = [e.get("what", {}) for e in event.get("entity", [])]
    return [what["reference"] for what in found if "reference" in what]


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    load_reference(engine)
    app = create_app(settings.model_copy(update={"audit_flush_interval": 60}))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.ingest.dispatcher.close()
    app.state.database.engine.dispose()


def test_a_bundle_through_its_adapter_is_one_import_event(
    client: TestClient, engine: Engine
) -> None:
    response = client.post("/fhir", content=payload("PKM03", 1), headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    (event,) = events(engine)
    assert event["type"]["code"] == "110107" and event["action"] == "C"
    assert event["outcome"] == "0"
    assert inbox_ids(event) == ["1"]
    stored = [e["response"]["location"] for e in response.json()["entry"]]
    assert set(stored) <= set(references(event))
    assert any(e["role"]["code"] == "1" for e in event["entity"])  # the Patient
    assert event["agent"][0]["network"]["address"] == "testclient"
    # the request was audited with its data: nothing waits for the buffer
    assert client.app.state.audit_buffer.waiting == 0  # type: ignore[attr-defined]


def test_a_rejected_message_is_audited_as_a_failure(client: TestClient, engine: Engine) -> None:
    bad = orjson.loads(payload("PKM05"))
    for e in bad["entry"]:
        if e["resource"]["resourceType"] == "Condition":
            e["resource"]["code"]["coding"][0]["code"] = "BARU"
    r = client.post("/ingest/puskesmas?mode=sync", content=orjson.dumps(bad))
    assert r.status_code in (400, 422), r.text
    (event,) = events(engine)
    assert event["type"]["code"] == "110107"
    assert event["outcome"] == "4" and event["outcomeDesc"].startswith("HTTP 4")
    assert references(event) == []  # what it would have stored was rolled back
    assert inbox_ids(event) == ["1"]


def test_a_worker_s_import_names_the_source(client: TestClient, engine: Engine) -> None:
    r = client.post("/ingest/puskesmas", content=payload("PKM02"), headers=FHIR_JSON)
    assert r.status_code == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [e for e in events(engine) if e["type"]["code"] == "110107"]
        if found:
            break
        time.sleep(0.1)
    (stored,) = found
    who = stored["agent"][0]["who"]
    assert who["identifier"] == {"system": audit.SOURCE_SYSTEM, "value": "puskesmas"}
    assert "network" not in stored["agent"][0]
    # the request that handed the message in: audited through the buffer
    client.app.state.audit_buffer.flush()  # type: ignore[attr-defined]
    received = [e for e in events(engine) if e["type"]["code"] != "110107" or e is not stored]
    assert any(e["entity"][0].get("name") == "/ingest/puskesmas" for e in received)


def test_a_message_whose_audit_cannot_be_stored_is_not_stored(
    service: IngestService, engine: Engine
) -> None:
    load_reference(engine)
    refuse_audit_rows(engine)
    try:
        with engine.connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM resources")).scalar_one()
        receipt = service.pipeline.receive("puskesmas", payload("PKM04"))
        try:
            row = service.pipeline.process(receipt.id)
        except TransientError:
            row = None
    finally:  # the trigger would outlive the test in PostgreSQL's emptied database
        drop_refusal(engine)
    with engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM resources")).scalar_one()
        status = conn.execute(
            text("SELECT status FROM inbox_messages WHERE id = :i"), {"i": receipt.id}
        ).scalar_one()
    assert after == before
    assert status == "failed" and (row is None or row.status == "failed")
