"""Patient/$everything: the whole compartment in one Bundle unless the client pages it with
_count, with the resources it refers to (one level out, each once).
http://hl7.org/fhir/R4/patient-operation-everything.html"""

from __future__ import annotations

from collections import Counter

import pytest
from factories import observation, patient
from fastapi.testclient import TestClient

from fhirhub.services import everything

H = {"content-type": "application/fhir+json"}
OBSERVATIONS = 60


def _put(client: TestClient, resource: dict) -> None:
    r = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=H)
    assert r.status_code in (200, 201), r.text


def _city(client: TestClient) -> None:
    _put(client, {"resourceType": "Organization", "id": "pkm", "name": "Puskesmas Wajo"})
    _put(client, {"resourceType": "Organization", "id": "rsud", "name": "RSUD Baubau"})
    _put(client, {"resourceType": "Organization", "id": "unrelated", "name": "Elsewhere"})
    _put(client, {"resourceType": "Practitioner", "id": "dr", "name": [{"family": "Hasan"}]})
    _put(client, {"resourceType": "Location", "id": "ward", "name": "Ward 1"})
    _put(
        client,
        {
            **patient(),
            "id": "p1",
            "generalPractitioner": [{"reference": "Practitioner/dr"}],
            "managingOrganization": {"reference": "Organization/pkm"},
        },
    )
    _put(client, {**patient(nik="7472024501900007", family="La Ode Hasan"), "id": "p2"})
    _put(
        client,
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/p1"},
            "serviceProvider": {"reference": "Organization/rsud"},
            "location": [{"location": {"reference": "Location/ward"}}],
        },
    )
    entries = [
        {
            "resource": observation("Patient/p1", performer=[{"reference": "Practitioner/dr"}]),
            "request": {"method": "POST", "url": "Observation"},
        }
        for _ in range(OBSERVATIONS)
    ]
    entries.append(
        {"resource": observation("Patient/p2"), "request": {"method": "POST", "url": "Observation"}}
    )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    assert client.post("/fhir", json=bundle, headers=H).status_code == 200


def _modes(bundle: dict) -> Counter[tuple[str, str]]:
    return Counter((e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"])


def test_the_whole_set_in_one_bundle_with_what_it_refers_to(client: TestClient) -> None:
    _city(client)
    r = client.get("/fhir/Patient/p1/$everything")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    bundle = r.json()
    assert [link["relation"] for link in bundle["link"]] == ["self"]  # no next page
    assert bundle["total"] == OBSERVATIONS + 3  # with p1's Person, in its compartment (link)
    assert _modes(bundle) == {
        ("match", "Patient"): 1,
        ("match", "Person"): 1,
        ("match", "Encounter"): 1,
        ("match", "Observation"): OBSERVATIONS,
        ("include", "Practitioner"): 1,
        ("include", "Organization"): 2,
        ("include", "Location"): 1,
    }
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    assert "http://testserver/fhir/Organization/unrelated" not in urls
    assert "http://testserver/fhir/Patient/p2" not in urls


def test_count_pages_it(client: TestClient) -> None:
    _city(client)
    r = client.get("/fhir/Patient/p1/$everything", params={"_count": "25"})
    first = r.json()
    matches = sum(1 for e in first["entry"] if e["search"]["mode"] == "match")
    assert matches == 25
    assert "next" in [link["relation"] for link in first["link"]]
    # each page carries what its own matches refer to
    included = {e["fullUrl"] for e in first["entry"] if e["search"]["mode"] == "include"}
    assert "http://testserver/fhir/Practitioner/dr" in included
    seen = matches
    page = first
    while nxt := [link["url"] for link in page["link"] if link["relation"] == "next"]:
        page = client.get(nxt[0]).json()
        seen += sum(1 for e in page["entry"] if e["search"]["mode"] == "match")
    assert seen == OBSERVATIONS + 3


def test_streamed_in_batches(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches smaller than the set: every entry still comes once, and the JSON is whole."""
    _city(client)
    monkeypatch.setattr(everything, "BATCH", 7)
    bundle = client.get("/fhir/Patient/p1/$everything").json()
    assert sum(_modes(bundle).values()) == OBSERVATIONS + 3 + 4
    assert len({e["fullUrl"] for e in bundle["entry"]}) == OBSERVATIONS + 3 + 4


def test_type_and_unknown_patient(client: TestClient) -> None:
    _city(client)
    bundle = client.get("/fhir/Patient/p1/$everything", params={"_type": "Encounter"}).json()
    assert _modes(bundle) == {
        ("match", "Encounter"): 1,
        ("include", "Organization"): 1,
        ("include", "Location"): 1,
        ("include", "Patient"): 1,
    }
    assert client.get("/fhir/Patient/nobody/$everything").status_code == 404


def test_nothing_matched_is_a_bundle_without_entries(client: TestClient) -> None:
    _put(client, {**patient(), "id": "p3"})
    bundle = client.get("/fhir/Patient/p3/$everything", params={"_type": "Immunization"}).json()
    assert bundle["total"] == 0 and "entry" not in bundle
