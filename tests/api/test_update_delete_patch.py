"""update, conditional update, patch, delete and conditional delete.
http://hl7.org/fhir/R4/http.html#update, #cond-update, #patch, #delete, #cdelete"""

from __future__ import annotations

from factories import NIK, patient
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}
PATCH = {"content-type": "application/json-patch+json"}


def _create(client: TestClient, **extra: object) -> dict:
    r = client.post("/fhir/Patient", json=patient(**extra), headers=H)
    assert r.status_code == 201
    return r.json()


def test_update_makes_a_new_version(client: TestClient) -> None:
    p = _create(client)
    r = client.put(f"/fhir/Patient/{p['id']}", json={**p, "gender": "male"}, headers=H)
    assert r.status_code == 200
    assert r.headers["etag"] == 'W/"2"'
    assert r.headers["location"].endswith(f"/Patient/{p['id']}/_history/2")
    assert r.json()["meta"]["versionId"] == "2"
    assert r.json()["meta"]["lastUpdated"] > p["meta"]["lastUpdated"]


def test_update_as_create_with_client_id_is_201(client: TestClient) -> None:
    r = client.put("/fhir/Patient/pasien-1", json={**patient(), "id": "pasien-1"}, headers=H)
    assert r.status_code == 201
    assert r.json()["id"] == "pasien-1"
    assert client.get("/fhir/Patient/pasien-1").status_code == 200


def test_identical_update_makes_no_new_version(client: TestClient) -> None:
    p = _create(client)
    r = client.put(f"/fhir/Patient/{p['id']}", json=p, headers=H)
    assert r.status_code == 200
    assert r.headers["etag"] == 'W/"1"'


def test_update_needs_matching_id(client: TestClient) -> None:
    p = _create(client)
    missing = {k: v for k, v in p.items() if k != "id"}
    r = client.put(f"/fhir/Patient/{p['id']}", json=missing, headers=H)
    assert r.status_code == 400
    r = client.put(f"/fhir/Patient/{p['id']}", json={**p, "id": "other"}, headers=H)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Patient.id"]
    r = client.put(f"/fhir/Observation/{p['id']}", json=p, headers=H)
    assert r.status_code == 400


def test_if_match_versioned_update(client: TestClient) -> None:
    p = _create(client)
    url = f"/fhir/Patient/{p['id']}"
    ok = client.put(url, json={**p, "gender": "male"}, headers={**H, "if-match": 'W/"1"'})
    assert ok.status_code == 200
    stale = client.put(url, json={**p, "gender": "other"}, headers={**H, "if-match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    bad = client.put(url, json=p, headers={**H, "if-match": "banana"})
    assert bad.status_code == 400
    assert client.get(url).json()["gender"] == "male"


def test_conditional_update_creates_updates_or_refuses(client: TestClient) -> None:
    url = f"/fhir/Patient?identifier={NIK}|7472010101010001"
    body = patient(nik="7472010101010001")
    created = client.put(url, json=body, headers=H)
    assert created.status_code == 201
    updated = client.put(url, json={**body, "gender": "male"}, headers=H)
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.headers["etag"] == 'W/"2"'
    _create(client, name=[{"family": "Dua"}])
    _create(client, name=[{"family": "Dua"}])
    many = client.put("/fhir/Patient?family=Dua", json=patient(), headers=H)
    assert many.status_code == 412


def test_patch_applies_json_patch(client: TestClient) -> None:
    p = _create(client)
    ops = [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "add", "path": "/telecom", "value": [{"system": "phone", "value": "+6281234"}]},
    ]
    r = client.patch(f"/fhir/Patient/{p['id']}", json=ops, headers=PATCH)
    assert r.status_code == 200
    assert r.json()["gender"] == "male" and r.json()["telecom"][0]["value"] == "+6281234"
    assert r.headers["etag"] == 'W/"2"'


def test_patch_errors(client: TestClient) -> None:
    p = _create(client)
    url = f"/fhir/Patient/{p['id']}"
    failing_test = [{"op": "test", "path": "/gender", "value": "male"}]
    assert client.patch(url, json=failing_test, headers=PATCH).status_code == 422
    to_invalid = [{"op": "replace", "path": "/gender", "value": 3}]
    r = client.patch(url, json=to_invalid, headers=PATCH)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["Patient.gender"]
    change_id = [{"op": "replace", "path": "/id", "value": "x"}]
    assert client.patch(url, json=change_id, headers=PATCH).status_code == 422
    wrong_media = client.patch(url, json=[], headers=H)
    assert wrong_media.status_code == 415
    assert client.patch("/fhir/Patient/none", json=[], headers=PATCH).status_code == 404
    stale = client.patch(url, json=[], headers={**PATCH, "if-match": 'W/"9"'})
    assert stale.status_code == 412
    assert client.get(url).json()["meta"]["versionId"] == "1"


def test_delete_is_versioned_and_idempotent(client: TestClient) -> None:
    p = _create(client)
    url = f"/fhir/Patient/{p['id']}"
    r = client.delete(url)
    assert r.status_code == 204
    assert r.headers["etag"] == 'W/"2"'
    assert client.get(url).status_code == 410
    assert client.delete(url).status_code == 204  # again: nothing changes
    assert client.get(f"{url}/_history/1").status_code == 200
    assert client.get(f"{url}/_history/2").status_code == 410
    history = client.get(f"{url}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    # a deleted resource may be created again with its id
    again = client.put(url, json=p, headers=H)
    assert again.status_code == 201 and again.headers["etag"] == 'W/"3"'


def test_conditional_delete(client: TestClient) -> None:
    p = _create(client, identifier=[{"system": NIK, "value": "7472010202020002"}])
    r = client.delete(f"/fhir/Patient?identifier={NIK}|7472010202020002")
    assert r.status_code == 204
    assert client.get(f"/fhir/Patient/{p['id']}").status_code == 410
    assert client.delete(f"/fhir/Patient?identifier={NIK}|none").status_code == 204
    _create(client, name=[{"family": "Tiga"}])
    _create(client, name=[{"family": "Tiga"}])
    assert client.delete("/fhir/Patient?family=Tiga").status_code == 412
    assert client.delete("/fhir/Patient").status_code == 400  # no condition


def test_conditional_create(client: TestClient) -> None:
    cond = {**H, "if-none-exist": f"identifier={NIK}|7472010303030003"}
    first = client.post("/fhir/Patient", json=patient(nik="7472010303030003"), headers=cond)
    second = client.post("/fhir/Patient", json=patient(nik="7472010303030003"), headers=cond)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    _create(client, name=[{"family": "Empat"}])
    _create(client, name=[{"family": "Empat"}])
    many = client.post(
        "/fhir/Patient", json=patient(), headers={**H, "if-none-exist": "family=Empat"}
    )
    assert many.status_code == 412


def test_conditional_update_without_match_may_not_take_another_resources_id(
    client: TestClient,
) -> None:
    taken = _create(client)
    body = {**patient(nik="7472010404040004"), "id": taken["id"]}
    r = client.put(f"/fhir/Patient?identifier={NIK}|7472010404040004", json=body, headers=H)
    assert r.status_code == 409
    assert client.get(f"/fhir/Patient/{taken['id']}").json()["meta"]["versionId"] == "1"
    free = {**patient(nik="7472010404040004"), "id": "pasien-baru"}
    r = client.put(f"/fhir/Patient?identifier={NIK}|7472010404040004", json=free, headers=H)
    assert r.status_code == 201 and r.json()["id"] == "pasien-baru"
