"""Messages and links that say the right thing: JSON Patch errors name the path, not the stored
resource; a transaction names a foreign URL as such; _history keeps _elements; a bad date or
_count says what is wrong. (The replay count is tested in tests/ingest/test_pipeline.py.)"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
from factories import patient
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}
PATCH = {"content-type": "application/json-patch+json"}
SECRET = "Wa Ode Rahasia"


@pytest.mark.parametrize(
    ("ops", "status", "names"),
    [
        ([{"op": "add", "path": "/photo/0/url", "value": "x"}], 422, "/photo/0/url"),
        ([{"op": "replace", "path": "/deceasedBoolean", "value": True}], 422, "/deceasedBoolean"),
        ([{"op": "test", "path": "/name/0/family", "value": "x"}], 422, "/name/0/family"),
        ([{"op": "move", "from": "/nothing", "path": "/x"}], 422, "/nothing"),
        ([{"op": "bogus", "path": "/gender"}], 400, "/gender"),
    ],
)
def test_json_patch_errors_name_the_path_not_the_resource(
    client: TestClient, ops: list, status: int, names: str
) -> None:
    p = client.post("/fhir/Patient", json=patient(family=SECRET), headers=H).json()
    valid = [{"op": "replace", "path": "/gender", "value": "male"}]
    r = client.patch(f"/fhir/Patient/{p['id']}", content=json.dumps(valid + ops), headers=PATCH)
    assert r.status_code == status, r.text
    diagnostics = r.json()["issue"][0]["diagnostics"]
    assert names in diagnostics and "operation 1" in diagnostics
    assert SECRET not in r.text and "female" not in r.text and "7472014501900001" not in r.text


def test_a_foreign_absolute_url_in_a_transaction_is_named_as_such(client: TestClient) -> None:
    def bundle(url: str) -> dict:
        entry = {"resource": patient(), "request": {"method": "POST", "url": url}}
        return {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}

    r = client.post("/fhir", json=bundle("https://other.example/fhir/Patient"), headers=H)
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[0].request.url"]
    assert "not on this server" in issue["diagnostics"]
    assert "Unknown resource type" not in issue["diagnostics"]
    # this server's own base is accepted as a prefix
    r = client.post("/fhir", json=bundle("http://testserver/fhir/Patient"), headers=H)
    assert r.status_code == 200, r.text
    assert r.json()["entry"][0]["response"]["status"].startswith("201")


def test_history_keeps_elements_in_entries_and_the_next_link(client: TestClient) -> None:
    p = client.post("/fhir/Patient", json=patient(), headers=H).json()
    client.put(f"/fhir/Patient/{p['id']}", json={**p, "gender": "male"}, headers=H)
    r = client.get(f"/fhir/Patient/{p['id']}/_history", params={"_elements": "gender", "_count": 1})
    assert r.status_code == 200, r.text
    page = r.json()
    resource = page["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "gender"}
    assert any(t["code"] == "SUBSETTED" for t in resource["meta"]["tag"])
    (nxt,) = [link["url"] for link in page["link"] if link["relation"] == "next"]
    assert parse_qs(urlparse(nxt).query)["_elements"] == ["gender"]
    second = client.get(nxt).json()["entry"][0]["resource"]
    assert set(second) == {"resourceType", "id", "meta", "gender"}


def test_a_date_that_is_not_a_date(client: TestClient) -> None:
    r = client.get("/fhir/Patient", params={"birthdate": "notadate"})
    assert r.status_code == 400
    diagnostics = r.json()["issue"][0]["diagnostics"]
    assert "'notadate' is not a date" in diagnostics
    assert "prefix 'no'" not in diagnostics


def test_a_number_that_is_not_a_number(client: TestClient) -> None:
    r = client.get("/fhir/RiskAssessment", params={"probability": "abc"})
    assert r.status_code == 400
    assert "'abc' is not a number" in r.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("path", ["/fhir/Patient", "/fhir/Patient/_history"])
def test_a_negative_count(client: TestClient, path: str) -> None:
    r = client.get(path, params={"_count": "-1"})
    assert r.status_code == 400
    diagnostics = r.json()["issue"][0]["diagnostics"]
    assert "0 or more" in diagnostics and "whole number" not in diagnostics
    r = client.get(path, params={"_count": "many"})
    assert "a whole number" in r.json()["issue"][0]["diagnostics"]
