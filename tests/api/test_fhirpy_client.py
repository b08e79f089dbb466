"""A real FHIR client library, fhirpy, drives a running server: create, read, update,
history, delete and a transaction. http://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import uuid

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, ResourceNotFound

from tests.api.conftest import LiveServer
from tests.api.factories import NIK, observation, patient


@pytest.fixture
def fhir(live_server: LiveServer) -> SyncFHIRClient:
    return SyncFHIRClient(
        live_server.base, extra_headers={"Accept": "application/fhir+json", **live_server.headers}
    )


def test_fhirpy_create_read_update_history_delete(fhir: SyncFHIRClient) -> None:
    nik = "7472015507880003"
    created = fhir.resource("Patient", **patient(nik=nik))
    created.save()
    assert created.id and created["meta"]["versionId"] == "1"

    read = fhir.reference("Patient", created.id).to_resource()
    assert read["identifier"] == [{"system": NIK, "value": nik}]
    assert read["name"] == created["name"]

    read["gender"] = "male"
    read["telecom"] = [{"system": "phone", "value": "081234567890"}]
    read.save()
    assert read["meta"]["versionId"] == "2"
    again = fhir.resources("Patient").search(_id=created.id).get()
    assert again["gender"] == "male" and again["meta"]["versionId"] == "2"

    history = read.execute("_history", method="get")
    assert history["resourceType"] == "Bundle" and history["type"] == "history"
    versions = [e["resource"]["meta"]["versionId"] for e in history["entry"]]
    assert versions == ["2", "1"]
    assert history["entry"][1]["resource"]["gender"] == "female"
    first = fhir.execute(f"Patient/{created.id}/_history/1", method="get")
    assert first["gender"] == "female"

    found = fhir.resources("Patient").search(identifier=f"{NIK}|{nik}").fetch()
    assert [p.id for p in found] == [created.id]

    read.delete()
    with pytest.raises(ResourceNotFound):
        fhir.reference("Patient", created.id).to_resource()
    history = fhir.execute(f"Patient/{created.id}/_history", method="get")
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]


def test_fhirpy_transaction(fhir: SyncFHIRClient) -> None:
    subject = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": observation(subject, value=128),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "fullUrl": subject,
                "resource": patient(nik="7472016003920004"),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={NIK}|7472016003920004",
                },
            },
        ],
    }
    response = fhir.execute("", method="post", data=bundle)
    assert response["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert [s.split()[0] for s in statuses] == ["201", "201"]
    obs_id = response["entry"][0]["response"]["location"].split("/")[1]
    pat_id = response["entry"][1]["response"]["location"].split("/")[1]
    obs = fhir.reference("Observation", obs_id).to_resource()
    assert obs["subject"]["reference"] == f"Patient/{pat_id}"
    assert obs["valueQuantity"]["value"] == 128

    # The same bundle again: the Patient is matched, not duplicated; the Observation is new.
    again = fhir.execute("", method="post", data=bundle)
    assert [e["response"]["status"].split()[0] for e in again["entry"]] == ["201", "200"]
    assert again["entry"][1]["response"]["location"].split("/")[1] == pat_id
    assert len(fhir.resources("Observation").search(subject=f"Patient/{pat_id}").fetch()) == 2

    # A failing transaction stores nothing and comes back as an OperationOutcome.
    bad = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": patient(nik="7472016003920005"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {  # runs after the POST (PUTs follow POSTs) and fails: version 99 is not current
                "resource": {**patient(nik="7472016003920004"), "id": pat_id},
                "request": {"method": "PUT", "url": f"Patient/{pat_id}", "ifMatch": 'W/"99"'},
            },
        ],
    }
    with pytest.raises(MultipleResourcesFound) as failed:  # fhirpy's name for any 412
        fhir.execute("", method="post", data=bad)
    assert "If-Match" in str(failed.value) and "Bundle.entry[1]" in str(failed.value)
    assert fhir.resources("Patient").search(identifier=f"{NIK}|7472016003920005").fetch() == []
