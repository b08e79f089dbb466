"""The SearchParameters in conformance/search-parameters are live in every fresh install."""

from __future__ import annotations

from factories import patient
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}
ADMIN_CODE = "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode"


def test_patients_found_by_kelurahan_code(client: TestClient) -> None:
    for village in ("7472011001", "7472021002"):
        address = {
            "city": "Baubau",
            "extension": [
                {"url": ADMIN_CODE, "extension": [{"url": "village", "valueCode": village}]}
            ],
        }
        client.post("/fhir/Patient", json={**patient(), "address": [address]}, headers=H)
    found = client.get("/fhir/Patient", params={"address-village": "7472011001"}).json()
    assert len(found["entry"]) == 1
    metadata = client.get("/fhir/metadata").json()
    patient_entry = next(r for r in metadata["rest"][0]["resource"] if r["type"] == "Patient")
    assert any(p["name"] == "address-village" for p in patient_entry["searchParam"])
