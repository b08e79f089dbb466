"""A conditional interaction needs search criteria. http://hl7.org/fhir/R4/http.html#cond-update

Result parameters (``_count``, ``_sort``, ``_cursor``, ...), blank values or an empty query
select nothing: taken as a condition they would match every resource of the type, so that a
conditional delete deletes the only Device and a conditional update overwrites the only
Substance. Each such request is a 400 and changes nothing: conditional create (If-None-Exist),
update and delete over REST, and ifNoneExist, conditional urls and conditional references in
transaction and batch Bundles.
"""

from __future__ import annotations

from typing import Any

import pytest
from factories import NIK, patient
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}
EMPTY_CONDITIONS = ["_count=1", "_sort=code", "_cursor=abc", "_count=1&_sort=-_id", "code=", ""]


def device() -> dict[str, Any]:
    return {"resourceType": "Device", "status": "active", "manufacturer": "Baubau Medika"}


def substance(text: str = "paracetamol") -> dict[str, Any]:
    return {"resourceType": "Substance", "code": {"text": text}}


def _only(client: TestClient, res_type: str) -> list[dict[str, Any]]:
    bundle = client.get(f"/fhir/{res_type}").json()
    return [e["resource"] for e in bundle.get("entry", [])]


def _assert_no_criteria(response: Any, status: int = 400) -> None:
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "no search criteria" in outcome["issue"][0]["diagnostics"]


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


# --- REST -----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["_count=1", "_sort=code", "_cursor=abc", "_count=1&_pretty=1"])
def test_conditional_delete_without_criteria_is_refused(client: TestClient, query: str) -> None:
    stored = client.post("/fhir/Device", json=device(), headers=H).json()
    _assert_no_criteria(client.delete(f"/fhir/Device?{query}"))
    assert client.get(f"/fhir/Device/{stored['id']}").status_code == 200


@pytest.mark.parametrize("query", ["_sort=code", "_count=1", "_cursor=abc", "code="])
def test_conditional_update_without_criteria_is_refused(client: TestClient, query: str) -> None:
    stored = client.post("/fhir/Substance", json=substance(), headers=H).json()
    _assert_no_criteria(client.put(f"/fhir/Substance?{query}", json=substance("ibu"), headers=H))
    (only,) = _only(client, "Substance")
    assert only["id"] == stored["id"] and only["code"]["text"] == "paracetamol"
    assert only["meta"]["versionId"] == "1"


@pytest.mark.parametrize("condition", EMPTY_CONDITIONS)
def test_conditional_create_without_criteria_is_refused(client: TestClient, condition: str) -> None:
    client.post("/fhir/Patient", json=patient(), headers=H)
    other = patient(nik="7472010000000099", family="La Ode Ali")
    response = client.post("/fhir/Patient", json=other, headers={**H, "If-None-Exist": condition})
    _assert_no_criteria(response)
    assert response.json()["issue"][0]["expression"] == ["If-None-Exist"]
    assert len(_only(client, "Patient")) == 1


def test_conditions_with_criteria_still_match(client: TestClient) -> None:
    """The same requests with a criterion beside the result parameters work as before."""
    first = client.post("/fhir/Patient", json=patient(), headers=H).json()
    found = client.post(
        "/fhir/Patient",
        json=patient(),
        headers={**H, "If-None-Exist": f"identifier={NIK}|7472014501900001&_count=1"},
    )
    assert found.status_code == 200 and found.json()["id"] == first["id"]
    stored = client.post("/fhir/Device", json=device(), headers=H).json()
    assert client.delete(f"/fhir/Device?_id={stored['id']}&_count=1").status_code == 204
    assert client.get(f"/fhir/Device/{stored['id']}").status_code == 410


# --- transactions -----------------------------------------------------------------------------


def _transaction_entries(client: TestClient) -> dict[str, dict[str, Any]]:
    """One entry per kind of condition, each with the empty condition ``_count=1``."""
    client.post("/fhir/Patient", json=patient(), headers=H)
    return {
        "ifNoneExist": {
            "resource": patient(nik="7472010000000099"),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": "_count=1"},
        },
        "conditional update": {
            "resource": substance("ibu"),
            "request": {"method": "PUT", "url": "Substance?_sort=code"},
        },
        "conditional delete": {"request": {"method": "DELETE", "url": "Device?_count=1"}},
        "conditional reference": {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "berat badan"},
                "subject": {"reference": "Patient?_count=1"},
            },
            "request": {"method": "POST", "url": "Observation"},
        },
    }


@pytest.mark.parametrize(
    "kind", ["ifNoneExist", "conditional update", "conditional delete", "conditional reference"]
)
def test_transaction_entry_without_criteria_fails_the_transaction(
    client: TestClient, kind: str
) -> None:
    client.post("/fhir/Substance", json=substance(), headers=H)
    client.post("/fhir/Device", json=device(), headers=H)
    entry = _transaction_entries(client)[kind]
    valid = {"resource": device(), "request": {"method": "POST", "url": "Device"}}
    response = client.post("/fhir", json=_bundle("transaction", valid, entry), headers=H)
    _assert_no_criteria(response)
    assert "Bundle.entry[1]" in response.json()["issue"][0]["expression"][0]
    assert len(_only(client, "Patient")) == 1
    assert len(_only(client, "Device")) == 1  # neither deleted nor added
    assert [s["code"]["text"] for s in _only(client, "Substance")] == ["paracetamol"]
    assert _only(client, "Observation") == []


def test_batch_entries_without_criteria_fail_alone(client: TestClient) -> None:
    client.post("/fhir/Substance", json=substance(), headers=H)
    client.post("/fhir/Device", json=device(), headers=H)
    entries = _transaction_entries(client)
    valid = {"resource": device(), "request": {"method": "POST", "url": "Device"}}
    response = client.post("/fhir", json=_bundle("batch", *entries.values(), valid), headers=H)
    assert response.status_code == 200
    answers = response.json()["entry"]
    for answer in answers[:-1]:
        assert answer["response"]["status"].startswith("400")
        issue = answer["response"]["outcome"]["issue"][0]
        assert "no search criteria" in issue["diagnostics"]
    assert answers[-1]["response"]["status"] == "201 Created"
    assert len(_only(client, "Patient")) == 1
    assert len(_only(client, "Device")) == 2  # the batch's own, and the first still there
    assert [s["code"]["text"] for s in _only(client, "Substance")] == ["paracetamol"]
    assert _only(client, "Observation") == []
