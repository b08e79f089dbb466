"""Transaction and batch Bundles. http://hl7.org/fhir/R4/http.html#transaction"""

from __future__ import annotations

import base64
import json

from factories import NIK, observation, patient
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}


def _entry(resource: dict, method: str, url: str, full_url: str | None = None, **req: str) -> dict:
    entry: dict = {"resource": resource, "request": {"method": method, "url": url, **req}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _bundle(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _total(client: TestClient, res_type: str) -> int:
    """How many resources of the type exist now (not deleted)."""
    found = client.get(f"/fhir/{res_type}", params={"_summary": "count"}).json()
    return int(found["total"])


def test_transaction_rewrites_urn_uuid_references(client: TestClient) -> None:
    bundle = _bundle(
        "transaction",
        _entry(observation("urn:uuid:aaaa"), "POST", "Observation"),
        _entry(patient(), "POST", "Patient", "urn:uuid:aaaa"),
    )
    r = client.post("/fhir", json=bundle, headers=H)
    assert r.status_code == 200
    resp = r.json()
    assert resp["type"] == "transaction-response"
    obs_loc, pat_loc = (e["response"]["location"] for e in resp["entry"])
    assert [e["response"]["status"] for e in resp["entry"]] == ["201 Created"] * 2
    assert resp["entry"][0]["response"]["etag"] == 'W/"1"'
    assert resp["entry"][1]["fullUrl"].startswith("http://testserver/fhir/Patient/")
    obs = client.get(f"/fhir/{obs_loc.split('/_history')[0]}").json()
    pid = pat_loc.split("/")[1]
    assert obs["subject"]["reference"] == f"Patient/{pid}"


def test_transaction_is_all_or_nothing(client: TestClient) -> None:
    existing = client.post("/fhir/Patient", json=patient(), headers=H).json()
    bundle = _bundle(
        "transaction",
        _entry(patient(nik="7472010000000011"), "POST", "Patient"),
        _entry({**existing, "gender": "male"}, "PUT", f"Patient/{existing['id']}"),
        _entry(patient(), "PUT", "Patient/x", ifMatch='W/"5"'),  # fails: 412
    )
    r = client.post("/fhir", json=bundle, headers=H)
    assert r.status_code == 412
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"][0].startswith("Bundle.entry[2]")
    assert _total(client, "Patient") == 1
    assert client.get(f"/fhir/Patient/{existing['id']}").json()["gender"] == "female"


def test_transaction_reports_every_invalid_entry(client: TestClient) -> None:
    bundle = _bundle(
        "transaction",
        _entry({**patient(), "birthDate": "1990-13-45"}, "POST", "Patient"),
        _entry(patient(), "POST", "Patient"),
        _entry({**patient(), "gender": 7}, "POST", "Patient"),
    )
    r = client.post("/fhir", json=bundle, headers=H)
    assert r.status_code == 400
    expressions = [i["expression"][0] for i in r.json()["issue"]]
    assert "Bundle.entry[0].resource.birthDate" in expressions
    assert "Bundle.entry[2].resource.gender" in expressions
    assert _total(client, "Patient") == 0


def test_processing_order_delete_post_put_get(client: TestClient) -> None:
    gone = client.post("/fhir/Patient", json=patient(), headers=H).json()
    bundle = _bundle(
        "transaction",
        {"request": {"method": "GET", "url": f"Patient/{gone['id']}"}},
        _entry({**patient(), "id": "p-put"}, "PUT", "Patient/p-put"),
        _entry(patient(), "POST", "Patient"),
        {"request": {"method": "DELETE", "url": f"Patient/{gone['id']}"}},
    )
    resp = client.post("/fhir", json=bundle, headers=H).json()
    statuses = [e["response"]["status"] for e in resp["entry"]]
    # the GET runs last, after the DELETE
    assert statuses == ["410 Gone", "201 Created", "201 Created", "204 No Content"]


def test_conditional_create_and_reference_inside_a_transaction(client: TestClient) -> None:
    known = client.post("/fhir/Patient", json=patient(nik="7472010000000021"), headers=H).json()
    bundle = _bundle(
        "transaction",
        _entry(
            patient(nik="7472010000000021"),
            "POST",
            "Patient",
            "urn:uuid:p1",
            ifNoneExist=f"identifier={NIK}|7472010000000021",
        ),
        _entry(observation("urn:uuid:p1"), "POST", "Observation"),
        _entry(observation(f"Patient?identifier={NIK}|7472010000000021"), "POST", "Observation"),
    )
    resp = client.post("/fhir", json=bundle, headers=H).json()
    assert resp["entry"][0]["response"]["status"] == "200 OK"
    assert resp["entry"][0]["response"]["location"].startswith(f"Patient/{known['id']}/")
    for e in resp["entry"][1:]:
        obs = client.get(f"/fhir/{e['response']['location'].split('/_history')[0]}").json()
        assert obs["subject"]["reference"] == f"Patient/{known['id']}"
    assert _total(client, "Patient") == 1


def test_unresolvable_references_fail_the_transaction(client: TestClient) -> None:
    dangling = _bundle("transaction", _entry(observation("urn:uuid:nope"), "POST", "Observation"))
    r = client.post("/fhir", json=dangling, headers=H)
    assert r.status_code == 404
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.subject.reference"]
    unmatched = _bundle(
        "transaction",
        _entry(observation(f"Patient?identifier={NIK}|0"), "POST", "Observation"),
    )
    assert client.post("/fhir", json=unmatched, headers=H).status_code == 412


def test_duplicate_targets_are_refused(client: TestClient) -> None:
    bundle = _bundle(
        "transaction",
        _entry({**patient(), "id": "a"}, "PUT", "Patient/a"),
        _entry({**patient(), "id": "a"}, "PUT", "Patient/a"),
    )
    assert client.post("/fhir", json=bundle, headers=H).status_code == 400


def test_patch_entry_with_binary(client: TestClient) -> None:
    p = client.post("/fhir/Patient", json=patient(), headers=H).json()
    ops = json.dumps([{"op": "replace", "path": "/gender", "value": "male"}]).encode()
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(ops).decode(),
    }
    bundle = _bundle("transaction", _entry(binary, "PATCH", f"Patient/{p['id']}"))
    resp = client.post("/fhir", json=bundle, headers=H)
    assert resp.status_code == 200
    assert client.get(f"/fhir/Patient/{p['id']}").json()["gender"] == "male"


def test_batch_entries_are_independent(client: TestClient) -> None:
    bundle = _bundle(
        "batch",
        _entry(patient(), "POST", "Patient"),
        _entry({**patient(), "gender": 5}, "POST", "Patient"),
        _entry(patient(), "PUT", "Patient/b1"),
        {"request": {"method": "GET", "url": "Patient/missing"}},
        {"request": {"method": "DELETE", "url": "Patient/b1"}},
    )
    r = client.post("/fhir", json=bundle, headers=H)
    assert r.status_code == 200
    resp = r.json()
    assert resp["type"] == "batch-response"
    statuses = [e["response"]["status"].split()[0] for e in resp["entry"]]
    assert statuses == ["201", "400", "201", "404", "204"]
    outcome = resp["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[1].resource.gender"]
    assert _total(client, "Patient") == 1  # the POST stays; b1 was created, then deleted


def test_return_representation_includes_resources(client: TestClient) -> None:
    bundle = _bundle("transaction", _entry(patient(), "POST", "Patient"))
    r = client.post("/fhir", json=bundle, headers={**H, "prefer": "return=representation"})
    assert r.json()["entry"][0]["resource"]["resourceType"] == "Patient"


def test_bad_bundles(client: TestClient) -> None:
    assert client.post("/fhir", json=patient(), headers=H).status_code == 400
    collection = {"resourceType": "Bundle", "type": "collection", "entry": []}
    r = client.post("/fhir", json=collection, headers=H)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["Bundle.type"]
    no_request = _bundle("transaction", {"resource": patient()})
    r = client.post("/fhir", json=no_request, headers=H)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[0].request"]
    wrong_type = _bundle("transaction", _entry(patient(), "POST", "Observation"))
    assert client.post("/fhir", json=wrong_type, headers=H).status_code == 400


def test_a_transaction_of_ten_thousand_entries(client: TestClient) -> None:
    entries = []
    for i in range(2000):
        entries.append(_entry(patient(nik=f"74720100{i:08}"), "POST", "Patient", f"urn:uuid:p{i}"))
        for _ in range(4):
            entries.append(
                _entry(observation(f"urn:uuid:p{i}", value=100 + i % 50), "POST", "Observation")
            )
    r = client.post("/fhir", json=_bundle("transaction", *entries), headers=H)
    assert r.status_code == 200
    assert len(r.json()["entry"]) == 10_000
    assert _total(client, "Observation") == 8000
    assert _total(client, "Patient") == 2000


def test_conditional_update_entry_can_be_referenced(client: TestClient) -> None:
    condition = f"Patient?identifier={NIK}|7472010000000031"
    bundle = _bundle(
        "transaction",
        _entry(patient(nik="7472010000000031"), "PUT", condition, "urn:uuid:cp"),
        _entry(observation("urn:uuid:cp"), "POST", "Observation"),
    )
    first = client.post("/fhir", json=bundle, headers=H).json()
    pid = first["entry"][0]["response"]["location"].split("/")[1]
    assert first["entry"][0]["response"]["status"] == "201 Created"
    again = client.post("/fhir", json=bundle, headers=H).json()  # now it matches
    assert again["entry"][0]["response"]["location"].startswith(f"Patient/{pid}/")
    for resp in (first, again):
        obs_url = resp["entry"][1]["response"]["location"].split("/_history")[0]
        assert client.get(f"/fhir/{obs_url}").json()["subject"]["reference"] == f"Patient/{pid}"
    assert _total(client, "Patient") == 1


def test_few_new_resources_beside_many_new_versions(client: TestClient) -> None:
    """Rows of one table by COPY, of the others in one pipeline, in an order that keeps each
    version and index row after its resource (PostgreSQL; plain INSERTs on SQLite)."""
    ids = [f"t{i}" for i in range(80)]
    first = _bundle(
        "transaction",
        *(_entry({**patient(), "id": i}, "PUT", f"Patient/{i}") for i in ids),
    )
    assert client.post("/fhir", json=first, headers=H).status_code == 200
    renamed = {**patient(), "name": [{"family": "Kaimuddin", "given": ["La"]}]}
    second = _bundle(
        "transaction",
        *(_entry({**renamed, "id": i}, "PUT", f"Patient/{i}") for i in ids),
        _entry({**renamed, "id": "t-new"}, "PUT", "Patient/t-new"),
    )
    r = client.post("/fhir", json=second, headers=H)
    assert r.status_code == 200
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["200 OK"] * 80 + ["201 Created"]
    assert client.get("/fhir/Patient/t7/_history/2").json()["name"][0]["family"] == "Kaimuddin"
    found = client.get("/fhir/Patient", params={"family": "kaimuddin", "_summary": "count"})
    assert found.json()["total"] == 81
