"""create, read, vread, conditional read and rendering.
http://hl7.org/fhir/R4/http.html#create, #read, #vread"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from factories import observation, patient
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}


def test_create_returns_201_with_location_etag_and_body(client: TestClient) -> None:
    r = client.post("/fhir/Patient", json=patient(), headers=H)
    assert r.status_code == 201
    body = r.json()
    assert body["meta"]["versionId"] == "1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"] == f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    assert r.headers["content-type"].startswith("application/fhir+json")
    parsedate_to_datetime(r.headers["last-modified"])  # an HTTP date
    assert body["identifier"] == patient()["identifier"]


def test_create_ignores_the_client_id(client: TestClient) -> None:
    r = client.post("/fhir/Patient", json={**patient(), "id": "mine"}, headers=H)
    assert r.status_code == 201
    assert r.json()["id"] != "mine"


def test_read_returns_current_version_with_headers(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient(), headers=H).json()
    r = client.get(f"/fhir/Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["etag"] == 'W/"1"'
    assert "last-modified" in r.headers


def test_read_unknown_is_404_operation_outcome(client: TestClient) -> None:
    r = client.get("/fhir/Patient/nope")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["code"] == "not-found"


def test_read_of_unknown_type_is_404(client: TestClient) -> None:
    r = client.get("/fhir/Spaceship/1")
    assert r.status_code == 404
    assert r.json()["issue"][0]["code"] == "not-supported"


def test_vread_returns_each_version(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient(), headers=H).json()
    pid = created["id"]
    client.put(f"/fhir/Patient/{pid}", json={**created, "gender": "male"}, headers=H)
    v1 = client.get(f"/fhir/Patient/{pid}/_history/1")
    v2 = client.get(f"/fhir/Patient/{pid}/_history/2")
    assert (v1.status_code, v2.status_code) == (200, 200)
    assert v1.json()["gender"] == "female" and v2.json()["gender"] == "male"
    assert v2.headers["etag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{pid}/_history/3").status_code == 404
    assert client.get(f"/fhir/Patient/{pid}/_history/x").status_code == 404


def test_conditional_read_with_if_none_match(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=H).json()["id"]
    assert client.get(f"/fhir/Patient/{pid}", headers={"if-none-match": 'W/"1"'}).status_code == 304
    assert client.get(f"/fhir/Patient/{pid}", headers={"if-none-match": 'W/"0"'}).status_code == 200


def test_pretty_and_format(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=H).json()["id"]
    pretty = client.get(f"/fhir/Patient/{pid}?_pretty=true")
    assert pretty.status_code == 200 and "\n  " in pretty.text
    assert client.get(f"/fhir/Patient/{pid}?_format=json").status_code == 200
    assert client.get(f"/fhir/Patient/{pid}?_format=application/fhir%2Bjson").status_code == 200
    xml = client.get(f"/fhir/Patient/{pid}?_format=xml")
    assert xml.status_code == 406 and xml.json()["resourceType"] == "OperationOutcome"
    assert (
        client.get(f"/fhir/Patient/{pid}", headers={"accept": "application/fhir+xml"}).status_code
        == 406
    )
    assert client.get(f"/fhir/Patient/{pid}", headers={"accept": "*/*"}).status_code == 200


def test_prefer_return(client: TestClient) -> None:
    minimal = client.post(
        "/fhir/Patient", json=patient(), headers={**H, "prefer": "return=minimal"}
    )
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["location"]
    outcome = client.post(
        "/fhir/Patient", json=patient(), headers={**H, "prefer": "return=OperationOutcome"}
    )
    assert outcome.status_code == 201
    assert outcome.json()["resourceType"] == "OperationOutcome"
    full = client.post(
        "/fhir/Patient", json=patient(), headers={**H, "prefer": "return=representation"}
    )
    assert full.json()["resourceType"] == "Patient"


def test_decimals_keep_their_precision(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=H).json()["id"]
    body = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"suhu"},'
        b'"subject":{"reference":"Patient/' + pid.encode() + b'"},'
        b'"valueQuantity":{"value":36.50,"unit":"Cel"}}'
    )
    created = client.post("/fhir/Observation", content=body, headers=H)
    assert created.status_code == 201
    read = client.get(f"/fhir/Observation/{created.json()['id']}")
    assert b'"value":36.50' in read.content


def test_metadata_is_a_capability_statement_of_what_is_implemented(client: TestClient) -> None:
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    cs = r.json()
    CapabilityStatement.model_validate(cs)
    assert cs["fhirVersion"] == "4.0.1"
    rest = cs["rest"][0]
    assert {i["code"] for i in rest["interaction"]} >= {"transaction", "batch", "history-system"}
    patient_entry = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient_entry["interaction"]}
    assert codes >= {"read", "vread", "update", "patch", "delete", "create", "history-instance"}
    assert patient_entry["conditionalCreate"] is True
    assert any(p["name"] == "identifier" for p in patient_entry["searchParam"])


def test_observation_can_reference_a_created_patient(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=H).json()["id"]
    r = client.post("/fhir/Observation", json=observation(f"Patient/{pid}"), headers=H)
    assert r.status_code == 201


def test_reindex_operation(client: TestClient) -> None:
    client.post("/fhir/Patient", json=patient(), headers=H)
    client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "X"}, headers=H)
    r = client.post("/fhir/Patient/$reindex")
    assert r.status_code == 200
    assert r.json()["parameter"][0] == {"name": "reindexed", "valueInteger": 1}
    # the Patient, the Organization, the patient index's Person and Provenance, and the
    # AuditEvents of the two creates and the first $reindex (each stored with its write)
    assert client.post("/fhir/$reindex").json()["parameter"][0]["valueInteger"] == 7
    found = client.get("/fhir/Patient", params={"identifier": patient()["identifier"][0]["value"]})
    assert len(found.json()["entry"]) == 1
