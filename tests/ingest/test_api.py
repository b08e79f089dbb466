"""The ingest and inbox HTTP API, /readyz and /metrics, and the ``fhirhub inbox`` commands."""

from __future__ import annotations

import time

import orjson
import yaml
from fastapi.testclient import TestClient
from ingest_factories import city, facility_of, per_patient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from fhirhub.api.app import create_app
from fhirhub.config import Settings, get_settings


def payload(facility: str = "PKM01", k: int = 0) -> bytes:
    _, bundles = city()
    bundle = next(b for b in bundles if facility_of(b) == facility)
    return orjson.dumps(per_patient(bundle, 1)[k])


def with_unknown_code() -> bytes:
    b = orjson.loads(payload("PKM05"))
    for e in b["entry"]:
        if e["resource"]["resourceType"] == "Condition":
            e["resource"]["code"]["coding"][0]["code"] = "BARU"
    return orjson.dumps(b)


def wait_status(client: TestClient, url: str, status: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] == status:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{url} never became {status}")


def test_async_ingest_answers_202_with_a_status_url(client: TestClient):
    r = client.post(
        "/ingest/puskesmas", content=payload(), headers={"content-type": "application/fhir+json"}
    )
    assert r.status_code == 202
    body = r.json()
    assert r.headers["location"] == body["statusUrl"]
    assert body["statusUrl"].endswith(f"/ingest/status/{body['id']}")
    done = wait_status(client, body["statusUrl"], "processed")
    assert done["resources"] > 1 and len(done["sha256"]) == 64
    again = client.post("/ingest/puskesmas", content=payload()).json()
    assert again["duplicate"] is True and again["id"] == body["id"]


def test_sync_ingest_answers_with_the_outcome(client: TestClient):
    ok = client.post("/ingest/puskesmas?mode=sync", content=payload(k=1))
    assert ok.status_code == 200 and ok.json()["status"] == "processed"
    bad = client.post("/ingest/puskesmas?mode=sync", content=with_unknown_code())
    assert bad.status_code == 422
    assert bad.json()["resourceType"] == "OperationOutcome"
    assert bad.json()["issue"][0]["code"] == "code-invalid"
    assert bad.headers["location"].rsplit("/", 1)[1].isdigit()


FHIR_JSON = {"content-type": "application/fhir+json"}


def inbox(client: TestClient) -> list[dict]:
    return client.get("/admin/inbox").json()["messages"]


def versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM resource_versions")).scalar_one()


def test_a_puskesmas_bundle_posted_to_fhir_goes_through_the_inbox(
    client: TestClient, engine: Engine
):
    sent = payload("PKM03", k=2)
    r = client.post("/fhir", content=sent, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    response = r.json()
    assert response["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses and all(s.startswith("20") for s in statuses)
    for e in response["entry"]:  # on the server's base, as for any transaction
        assert e["fullUrl"] == "http://testserver/fhir/" + e["response"]["location"].split("/_h")[0]
    (message,) = inbox(client)
    assert message["source"] == "puskesmas" and message["status"] == "processed"
    # The adapter and the canonical pass ran: the Provenance names the message, the
    # Encounter's id is derived from its SATUSEHAT identifier (a PUT, not a server id).
    provenance = client.get("/fhir/Provenance").json()["entry"]
    provenance = [p for p in provenance if "patient-index" not in p["resource"]["meta"]["source"]]
    assert len(provenance) == 1
    encounters = [e for e in response["entry"] if e["response"]["location"].startswith("Enc")]
    encounter_id = encounters[0]["response"]["location"].split("/")[1]
    assert client.get(f"/fhir/Encounter/{encounter_id}").status_code == 200
    # The same Bundle again: the same answer, nothing new stored.
    before = versions(engine)
    again = client.post("/fhir", content=sent, headers=FHIR_JSON)
    assert again.status_code == 200 and again.json() == response
    assert versions(engine) == before
    # ... with the stored resources, for a client that prefers them
    full = client.post(
        "/fhir", content=sent, headers={**FHIR_JSON, "prefer": "return=representation"}
    )
    assert full.status_code == 200 and versions(engine) == before
    for entry in full.json()["entry"]:
        location = entry["response"]["location"].split("/")
        assert entry["resource"]["resourceType"] == location[0]
        assert entry["resource"]["meta"]["versionId"] == location[3]
    assert len(inbox(client)) == 1


def test_a_clinic_writing_gender_as_l_or_p_is_understood(client: TestClient):
    b = orjson.loads(payload("PKM06", k=3))
    patient = next(e for e in b["entry"] if e["resource"]["resourceType"] == "Patient")
    written = {"male": "L", "female": "Perempuan"}.get(patient["resource"].get("gender"), "L")
    patient["resource"]["gender"] = written
    r = client.post("/fhir", content=orjson.dumps(b), headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    location = next(
        e["response"]["location"]
        for e in r.json()["entry"]
        if e["response"]["location"].startswith("Patient/")
    )
    stored = client.get("/fhir/" + location.split("/_history")[0]).json()
    assert stored["gender"] == ("male" if written == "L" else "female")


def test_a_rejected_puskesmas_bundle_posted_to_fhir_is_kept(client: TestClient):
    r = client.post("/fhir", content=with_unknown_code(), headers=FHIR_JSON)
    assert r.status_code == 422
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "code-invalid"
    assert outcome["issue"][0]["expression"][0].startswith("Bundle.entry[")
    (message,) = inbox(client)
    assert message["status"] == "rejected" and message["outcomeStatus"] == 422
    assert client.get("/fhir/Condition").json().get("entry", []) == []


def test_a_puskesmas_batch_is_refused_and_kept(client: TestClient):
    b = orjson.loads(payload("PKM02", k=4))
    b["type"] = "batch"
    r = client.post("/fhir", content=orjson.dumps(b), headers=FHIR_JSON)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Bundle.type"]
    (message,) = inbox(client)
    assert message["status"] == "rejected" and message["outcomeStatus"] == 400


def test_a_bundle_no_adapter_claims_is_stored_directly(client: TestClient):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "https://example.org/mrn", "value": "1"}],
                },
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    r = client.post("/fhir", content=orjson.dumps(bundle), headers=FHIR_JSON)
    assert r.status_code == 200 and r.json()["entry"][0]["response"]["status"] == "201 Created"
    assert inbox(client) == []


def test_unknown_sources_and_empty_bodies_are_refused(client: TestClient):
    r = client.post("/ingest/nowhere", content=payload())
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    assert client.post("/ingest/puskesmas", content=b"").status_code == 400
    assert client.get("/ingest/status/999999").status_code == 404


def test_the_admin_api_lists_shows_and_replays(client: TestClient, mappings_dir):
    bad = client.post("/ingest/puskesmas?mode=sync", content=with_unknown_code())
    message_id = int(bad.headers["location"].rsplit("/", 1)[1])
    listed = client.get("/admin/inbox", params={"status": "rejected"}).json()["messages"]
    assert [m["id"] for m in listed] == [message_id]
    shown = client.get(f"/admin/inbox/{message_id}").json()
    assert shown["outcome"]["issue"][0]["code"] == "code-invalid"
    assert client.get(f"/admin/inbox/{message_id}/payload").content == with_unknown_code()
    assert client.get("/admin/inbox/counts").json() == {"puskesmas": {"rejected": 1}}

    table = mappings_dir / "puskesmas" / "pkm05.yaml"
    mapping = yaml.safe_load(table.read_text())
    mapping["local_codes"] = [
        {
            "system": "https://fhirhub.baubaukota.go.id/CodeSystem/diagnosa-lokal",
            "code": "BARU",
            "target_system": "http://hl7.org/fhir/sid/icd-10",
            "target_code": "R50.9",
        }
    ]
    table.write_text(yaml.safe_dump(mapping))
    r = client.post(f"/admin/inbox/{message_id}/replay")
    assert r.status_code == 202
    wait_status(client, f"/ingest/status/{message_id}", "processed")
    found = client.get("/fhir/Condition", params={"code": "http://hl7.org/fhir/sid/icd-10|R50.9"})
    assert found.json()["entry"]


def test_readyz_and_metrics(client: TestClient):
    assert client.get("/readyz").json() == {
        "status": "ready",
        "checks": {"database": "ok", "schema": "ok", "broker": "in-process"},
    }
    client.post("/ingest/puskesmas?mode=sync", content=payload(k=2))
    text = client.get("/metrics").text
    assert 'fhirhub_inbox_messages{source="puskesmas",status="processed"} 1.0' in text
    assert "fhirhub_ingest_processing_seconds_bucket" in text
    assert "fhirhub_ingest_queue_depth" in text


def test_readyz_says_when_the_broker_is_down(engine: Engine, settings: Settings):
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    app = create_app(down, run_migrations=False)
    with TestClient(app) as c:
        r = c.get("/readyz")
    app.state.database.engine.dispose()
    assert r.status_code == 503 and r.json()["checks"]["broker"] == "down"


def test_the_inbox_commands(service, settings: Settings, monkeypatch):
    from fhirhub.cli import app

    rejected = service.submit("puskesmas", with_unknown_code()).id
    processed = service.submit("puskesmas", payload(k=3)).id
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FHIRHUB_MAPPINGS_DIR", str(settings.mappings_dir))
    monkeypatch.delenv("FHIRHUB_BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(app, ["inbox", "list", "--status", "rejected"])
        assert listed.exit_code == 0, listed.output
        assert listed.output.startswith(f"{rejected}\tpuskesmas\t")
        assert "code-invalid" in listed.output and f"{processed}\t" not in listed.output
        shown = runner.invoke(app, ["inbox", "show", str(rejected)])
        assert orjson.loads(shown.output)["status"] == "rejected"
        replayed = runner.invoke(app, ["inbox", "replay", "--status", "rejected"])
        assert replayed.exit_code == 0 and replayed.output.strip() == "rejected 1"
    finally:
        get_settings.cache_clear()
