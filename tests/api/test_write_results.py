"""What a write reports and when it changes nothing (fhirhub.services.writes): the counts a
load report is made of, the status a transaction entry answers, and which differences make a
new version. http://hl7.org/fhir/R4/http.html#update, #delete, #patch"""

from __future__ import annotations

from factories import patient
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fhirhub.services.writes import Writer
from fhirhub.storage.repository import ResourceRepository

H = {"content-type": "application/fhir+json"}
PATCH = {"content-type": "application/json-patch+json"}


def _body(**extra: object) -> dict:
    return {**patient(), "id": "pasien-1", **extra}


def test_deleting_what_is_gone_changes_nothing_and_is_counted_as_unchanged(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn), now=1_000)
        never = writer.delete("Patient", "never-was")
        assert (never.status, never.version, never.changed) == (204, 0, False)
        writer.update("Patient", "pasien-1", _body(), validated=True)
        first = writer.delete("Patient", "pasien-1")
        again = writer.delete("Patient", "pasien-1")
        writer.flush()
    assert (first.status, first.version, first.changed) == (204, 2, True)
    assert (again.status, again.version, again.changed) == (204, 2, False)
    assert again.last_updated == first.last_updated
    assert writer.unchanged == 2  # the two deletes that found nothing to delete


def test_a_transaction_deleting_a_deleted_resource_answers_204(client: TestClient) -> None:
    assert client.put("/fhir/Patient/pasien-1", json=_body(), headers=H).status_code == 201
    assert client.delete("/fhir/Patient/pasien-1").status_code == 204
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Patient/pasien-1"}}],
    }
    r = client.post("/fhir", json=bundle, headers=H)
    assert r.status_code == 200, r.text
    (entry,) = r.json()["entry"]
    assert entry["response"]["status"].startswith("204")
    assert entry["response"]["etag"] == 'W/"2"'  # still the deletion's version


def test_an_update_that_changes_only_meta_tags_or_profiles_is_a_new_version(
    client: TestClient,
) -> None:
    url = "/fhir/Patient/pasien-1"
    assert client.put(url, json=_body(), headers=H).status_code == 201
    tagged = _body(meta={"tag": [{"system": "http://dinkes/tag", "code": "spm"}]})
    r = client.put(url, json=tagged, headers=H)
    assert r.headers["etag"] == 'W/"2"'
    assert r.json()["meta"]["tag"] == [{"system": "http://dinkes/tag", "code": "spm"}]
    # the same tags again, with the bookkeeping the server added: nothing new
    same = client.put(url, json=r.json(), headers=H)
    assert same.headers["etag"] == 'W/"2"'
    profiled = _body(meta={"profile": ["https://fhir.kemkes.go.id/r4/StructureDefinition/Patient"]})
    assert client.put(url, json=profiled, headers=H).headers["etag"] == 'W/"3"'
    # only versionId and lastUpdated differ: the same content
    stale = {
        **profiled,
        "meta": {**profiled["meta"], "versionId": "1", "lastUpdated": "2020-01-01T00:00:00Z"},
    }
    assert client.put(url, json=stale, headers=H).headers["etag"] == 'W/"3"'


def test_a_patch_may_not_change_the_resource_type(client: TestClient) -> None:
    url = "/fhir/Patient/pasien-1"
    assert client.put(url, json=_body(), headers=H).status_code == 201
    ops = [{"op": "replace", "path": "/resourceType", "value": "Practitioner"}]
    r = client.patch(url, json=ops, headers=PATCH)
    assert r.status_code == 422
    assert r.json()["issue"][0]["code"] == "processing"
    assert "resourceType" in r.json()["issue"][0]["diagnostics"]
    assert client.get(url).json()["resourceType"] == "Patient"
