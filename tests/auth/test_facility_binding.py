"""A facility writes only as its own Organization, and its Bundles at POST /fhir go through its
bound adapter as sent by it."""

from __future__ import annotations

from typing import Any

import pytest
from auth_app import FHIR_JSON, AuthClient
from ingest_factories import city, facility_of, per_patient

from fhirhub.auth import binding
from fhirhub.auth.roles import Role

OWN, OTHER = "Organization/org-pkm01", "Organization/org-pkm02"


@pytest.fixture
def pkm01(auth_app: AuthClient) -> dict[str, str]:
    secret = auth_app.register("pkm01", Role.facility, organization=OWN, adapter="puskesmas")
    assert secret
    return auth_app.headers(auth_app.token("pkm01", secret), **FHIR_JSON)


def _refused(answer: Any, expression: str) -> None:
    assert answer.status_code == 403, answer.text
    issue = answer.json()["issue"][0]
    assert issue["code"] == "forbidden" and issue["expression"] == [expression]
    assert OTHER in issue["diagnostics"]


ENCOUNTER = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}


def test_writes_naming_another_facility_are_403(
    auth_app: AuthClient, pkm01: dict[str, str]
) -> None:
    http = auth_app.http
    own = {**ENCOUNTER, "serviceProvider": {"reference": OWN}}
    assert http.post("/fhir/Encounter", json=own, headers=pkm01).status_code == 201
    other = {**ENCOUNTER, "serviceProvider": {"reference": OTHER}}
    _refused(http.post("/fhir/Encounter", json=other, headers=pkm01), "Encounter.serviceProvider")
    patient = {"resourceType": "Patient", "id": "p9", "managingOrganization": {"reference": OTHER}}
    _refused(
        http.put("/fhir/Patient/p9", json=patient, headers=pkm01), "Patient.managingOrganization"
    )
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "performer": [{"reference": "Practitioner/a"}, {"reference": f"http://x/fhir/{OTHER}"}],
    }
    _refused(http.post("/fhir/Observation", json=obs, headers=pkm01), "Observation.performer[1]")
    prov = {
        "resourceType": "Provenance",
        "target": [{"reference": "Patient/p9"}],
        "recorded": "2024-01-01T00:00:00Z",
        "agent": [{"who": {"reference": OWN}, "onBehalfOf": {"reference": OTHER}}],
    }
    _refused(
        http.post("/fhir/Provenance", json=prov, headers=pkm01), "Provenance.agent[0].onBehalfOf"
    )
    created = http.post("/fhir/Encounter", json=own, headers=pkm01).json()
    patch = [{"op": "replace", "path": "/serviceProvider", "value": {"reference": OTHER}}]
    answer = http.patch(
        f"/fhir/Encounter/{created['id']}",
        json=patch,
        headers={**pkm01, "content-type": "application/json-patch+json"},
    )
    _refused(answer, "patch[0].serviceProvider")
    txn = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": other, "request": {"method": "POST", "url": "Encounter"}}],
    }
    _refused(
        http.post("/fhir", json=txn, headers=pkm01), "Bundle.entry[0].resource.serviceProvider"
    )


def test_another_role_is_not_bound(auth_app: AuthClient) -> None:
    sync = auth_app.headers(auth_app.as_role(Role.sync), **FHIR_JSON)
    other = {**ENCOUNTER, "serviceProvider": {"reference": OTHER}}
    assert auth_app.http.post("/fhir/Encounter", json=other, headers=sync).status_code == 201


def _puskesmas_bundle(code: str) -> dict[str, Any]:
    _, bundles = city()
    return per_patient(next(b for b in bundles if facility_of(b) == code), 1)[0]


def test_a_facility_bundle_goes_through_its_adapter_as_itself(
    auth_app: AuthClient, pkm01: dict[str, str]
) -> None:
    reference, _ = city()
    sync = auth_app.headers(auth_app.as_role(Role.sync), **FHIR_JSON)
    assert auth_app.http.post("/fhir", json=reference, headers=sync).status_code == 200
    mine = auth_app.http.post("/fhir", json=_puskesmas_bundle("PKM01"), headers=pkm01)
    assert mine.status_code == 200, mine.text
    theirs = auth_app.http.post("/fhir", json=_puskesmas_bundle("PKM02"), headers=pkm01)
    assert theirs.status_code in (403, 422), theirs.text
    assert OTHER in theirs.text or "another Puskesmas" in theirs.text
    # the inbox records who sent it
    admin = auth_app.headers(auth_app.as_role(Role.admin))
    messages = auth_app.http.get("/admin/inbox", headers=admin).json()["messages"]
    assert {m["sender"] for m in messages if m["source"] == "puskesmas"} == {OWN}


def test_binding_reads_only_claiming_elements() -> None:
    resource = {
        "resourceType": "Patient",
        "generalPractitioner": [{"reference": OTHER}],
        "managingOrganization": {"reference": OWN},
    }
    assert binding.foreign_claim(resource, OWN) is None
    assert binding.foreign_claim(resource, OTHER) == ("Patient.managingOrganization", OWN)


def test_another_facilitys_stored_record_cannot_be_changed(
    auth_app: AuthClient, pkm01: dict[str, str]
) -> None:
    http = auth_app.http
    sync = auth_app.headers(auth_app.as_role(Role.sync), **FHIR_JSON)
    theirs = {**ENCOUNTER, "id": "e-theirs", "serviceProvider": {"reference": OTHER}}
    assert http.put("/fhir/Encounter/e-theirs", json=theirs, headers=sync).status_code == 201
    taken = {**theirs, "serviceProvider": {"reference": OWN}}
    for answer in (
        http.put("/fhir/Encounter/e-theirs", json=taken, headers=pkm01),
        http.patch(
            "/fhir/Encounter/e-theirs",
            json=[{"op": "replace", "path": "/status", "value": "cancelled"}],
            headers={**pkm01, "content-type": "application/json-patch+json"},
        ),
        http.delete("/fhir/Encounter/e-theirs", headers=pkm01),
    ):
        assert answer.status_code == 403, answer.text
        assert "e-theirs names Organization/org-pkm02" in answer.json()["issue"][0]["diagnostics"]
    wholesale = http.delete("/fhir/Encounter?status=finished", headers=pkm01)
    assert wholesale.status_code == 403
    assert http.get("/fhir/Encounter/e-theirs", headers=sync).json()["status"] == "finished"
    mine = {**ENCOUNTER, "id": "e-mine", "serviceProvider": {"reference": OWN}}
    assert http.put("/fhir/Encounter/e-mine", json=mine, headers=pkm01).status_code == 201
    assert http.delete("/fhir/Encounter/e-mine", headers=pkm01).status_code == 204
