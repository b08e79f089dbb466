"""Messages of one batch written together (``storing.store_together``, as the MLLP listener's
group commit does): independent messages of one sender are written as one, each still with
its own Provenance, AuditEvent and response; messages that name one patient, resource or
condition are written one by one; a failure writing them together loses and doubles nothing."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from mllp_client import oru
from sqlalchemy import Engine, text

from fhirhub.errors import FhirError
from fhirhub.ingest import storing
from fhirhub.ingest.pipeline import Pipeline
from fhirhub.ingest.service import IngestService
from fhirhub.services import audit
from fhirhub.storage.inbox_repository import InboxRepository

HL7 = "application/hl7-v2"


def keep(pipeline: Pipeline, *payloads: bytes) -> list[int]:
    receipts = pipeline.receive_many("rsud", [(p, "RSUD01") for p in payloads], content_type=HL7)
    return [r.id for r in receipts]


def stored_types(engine: Engine) -> Counter[str]:
    """Resources stored, by type: the sources' and their AuditEvents (the patient index's own
    depend on the records met before)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT res_type, COUNT(*) FROM resources WHERE content IS NULL "
                "OR CAST(content AS TEXT) NOT LIKE '%/source/patient-index%' GROUP BY res_type"
            )
        ).all()
    return Counter({r[0]: int(r[1]) for r in rows})


def events_by_message(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT content FROM resources WHERE res_type = 'AuditEvent' ORDER BY pk")
        ).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for (content,) in rows:
        event = content if isinstance(content, dict) else json.loads(content)
        for entity in event.get("entity", []):
            identifier = entity.get("what", {}).get("identifier", {})
            if identifier.get("system") == audit.INBOX_SYSTEM:
                out.setdefault(identifier["value"], []).append(event)
    return out


def named(event: dict[str, Any]) -> set[str]:
    """The resources an AuditEvent names, without their versions (not the patient's)."""
    refs = [e.get("what", {}).get("reference") for e in event.get("entity", [])]
    return {r.split("/_history/")[0] for r in refs if r and not r.startswith("Patient/")}


def located(engine: Engine, message_id: int) -> set[str]:
    """The resources a processed message's response names (without their versions)."""
    with engine.connect() as conn:
        response = InboxRepository(conn).response(message_id)
    assert response is not None
    entries = json.loads(response)["entry"]
    return {"/".join(e["response"]["location"].split("/")[:2]) for e in entries}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many messages each call of ``store_together`` wrote."""
    seen: list[int] = []
    original = storing.store_together

    def spy(conn: Any, items: Any, base_url: str) -> Any:
        seen.append(len(items))
        return original(conn, items, base_url)

    monkeypatch.setattr(storing, "store_together", spy)
    return seen


def test_independent_messages_are_written_as_one_each_with_its_own_audit_and_response(
    service: IngestService, engine: Engine, calls: list[int]
) -> None:
    pipeline = service.pipeline
    before = stored_types(engine)
    ids = keep(pipeline, *(oru(f"T{i}", obx=i + 1, mrn=f"00010{i}") for i in range(3)))
    rows = pipeline.process_many(ids)
    assert calls == [3]
    assert [rows[i].status for i in ids] == ["processed"] * 3
    # Each: a Patient, a DiagnosticReport, its Observations and its Provenance
    assert [rows[i].resources for i in ids] == [4, 5, 6]
    after = stored_types(engine)
    together = after - before
    events = events_by_message(engine)
    for i in ids:
        (event,) = events[str(i)]
        assert named(event) == {r for r in located(engine, i) if not r.startswith("Patient/")}
    # The same messages stored one by one (other patients, the same shapes) store as much.
    alone = keep(pipeline, *(oru(f"A{i}", obx=i + 1, mrn=f"00020{i}") for i in range(3)))
    for i in alone:
        assert pipeline.process(i).status == "processed"
    assert calls == [3]
    one_by_one = stored_types(engine) - after
    assert one_by_one == together
    assert [pipeline._current(i).resources for i in alone] == [4, 5, 6]


def test_messages_of_one_patient_are_written_one_by_one(
    service: IngestService, engine: Engine, calls: list[int]
) -> None:
    pipeline = service.pipeline
    ids = keep(pipeline, oru("S1", obx=1, mrn="000300"), oru("S2", obx=2, mrn="000300"))
    rows = pipeline.process_many(ids)
    assert calls == []
    assert [rows[i].status for i in ids] == ["processed", "processed"]
    assert stored_types(engine)["Patient"] == 1


def test_a_failure_writing_them_together_stores_each_alone_once(
    service: IngestService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = storing.store_together

    def fails_after_writing(conn: Any, items: Any, base_url: str) -> Any:
        original(conn, items, base_url)  # its writes are rolled back with its savepoint
        raise FhirError.single(409, "conflict", "written together, then refused")

    monkeypatch.setattr(storing, "store_together", fails_after_writing)
    pipeline = service.pipeline
    ids = keep(pipeline, oru("R1", obx=1, mrn="000401"), oru("R2", obx=2, mrn="000402"))
    rows = pipeline.process_many(ids)
    assert [rows[i].status for i in ids] == ["processed", "processed"]
    types = stored_types(engine)
    assert (types["Patient"], types["Observation"], types["DiagnosticReport"]) == (2, 3, 2)
    assert types["Provenance"] >= 2
    events = events_by_message(engine)
    assert [len(events[str(i)]) for i in ids] == [1, 1]


def bundle(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def patient(full_url: str, value: str, condition: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "url": "Patient"}
    if condition is not None:
        request["ifNoneExist"] = condition
    resource = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": value}]}
    return {"fullUrl": full_url, "resource": resource, "request": request}


def test_claims_name_resources_identifiers_and_conditions() -> None:
    a = storing.claims(bundle(patient("urn:uuid:1", "A", "identifier=urn:mrn|A")))
    b = storing.claims(bundle(patient("urn:uuid:2", "B", "identifier=urn:mrn|B")))
    assert a is not None and b is not None and not a & b
    # one asks for the identifier the other's resource carries: they are not independent
    c = storing.claims(bundle(patient("urn:uuid:3", "C", "identifier=urn:other|A")))
    assert c is not None and a & c
    same_url = storing.claims(bundle(patient("urn:uuid:1", "D")))
    assert same_url is not None and a & same_url
    # a condition on something else, or a read: cannot be told
    assert storing.claims(bundle(patient("urn:uuid:4", "E", "name=Siti"))) is None
    read = {"request": {"method": "GET", "url": "Patient/1"}}
    assert storing.claims(bundle(read)) is None
