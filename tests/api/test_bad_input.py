"""Every bad input gets its 4xx OperationOutcome, and the server keeps serving."""

from __future__ import annotations

import pytest
from factories import patient
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}


def _outcome(r, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and all(i["severity"] == "error" for i in body["issue"])
    return body


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"resourceType": "Patient", ', 400, "structure"),
        (b"[1, 2", 400, "structure"),
        (b"\xff\xfe", 400, "structure"),
        (b'{"resourceType": "Patient", "x": NaN}', 400, "structure"),
        (b"", 400, "required"),
        (b"   ", 400, "required"),
        (b"[]", 400, "structure"),
    ],
)
def test_malformed_or_missing_body(client: TestClient, body: bytes, status: int, code: str) -> None:
    out = _outcome(client.post("/fhir/Patient", content=body, headers=H), status)
    assert out["issue"][0]["code"] == code


def test_unknown_resource_type(client: TestClient) -> None:
    _outcome(client.post("/fhir/Spaceship", json={"resourceType": "Spaceship"}, headers=H), 404)
    # an R4B-only type is not R4
    _outcome(client.post("/fhir/Citation", json={"resourceType": "Citation"}, headers=H), 404)
    out = _outcome(client.post("/fhir/Patient", json={"resourceType": "Spaceship"}, headers=H), 400)
    assert out["issue"][0]["expression"] == ["resourceType"]


def test_wrong_data_types_name_every_element(client: TestClient) -> None:
    body = {**patient(), "gender": 3, "birthDate": "05-01-1990", "deceasedBoolean": [], "x": 1}
    out = _outcome(client.post("/fhir/Patient", json=body, headers=H), 400)
    paths = {i["expression"][0] for i in out["issue"]}
    assert paths == {"Patient.gender", "Patient.birthDate", "Patient.deceasedBoolean", "Patient.x"}


def test_nested_paths(client: TestClient) -> None:
    body = {**patient(), "name": [{"family": "A"}, {"given": "B"}]}
    out = _outcome(client.post("/fhir/Patient", json=body, headers=H), 400)
    assert out["issue"][0]["expression"] == ["Patient.name[1].given"]


def test_id_mismatch(client: TestClient) -> None:
    out = _outcome(client.put("/fhir/Patient/a", json={**patient(), "id": "b"}, headers=H), 400)
    assert out["issue"][0]["expression"] == ["Patient.id"]
    _outcome(client.put("/fhir/Patient/a b", json={**patient(), "id": "a b"}, headers=H), 400)


def test_body_too_large(client: TestClient) -> None:
    huge = {
        **patient(),
        "text": {"status": "generated", "div": "<div>" + "x" * 8_100_000 + "</div>"},
    }
    out = _outcome(client.post("/fhir/Patient", json=huge, headers=H), 413)
    assert out["issue"][0]["code"] == "too-costly"


def test_unsupported_media_type(client: TestClient) -> None:
    r = client.post(
        "/fhir/Patient", content=b"<Patient/>", headers={"content-type": "application/fhir+xml"}
    )
    _outcome(r, 415)
    _outcome(client.post("/fhir/Patient", content=b"{}", headers={}), 415)


def test_unknown_route_and_method(client: TestClient) -> None:
    _outcome(client.get("/fhir/Patient/1/_history/1/extra"), 404)
    _outcome(client.put("/fhir", json={}, headers=H), 405)


def test_server_keeps_serving_after_bad_input(client: TestClient) -> None:
    for body in (b"{", b"[]", b'{"resourceType":"Patient","gender":1}'):
        client.post("/fhir/Patient", content=body, headers=H)
    assert client.post("/fhir/Patient", json=patient(), headers=H).status_code == 201
    assert client.get("/fhir/metadata").status_code == 200


def test_primitives_must_have_their_json_kind(client: TestClient) -> None:
    body = {
        **patient(),
        "active": "yes",
        "multipleBirthInteger": "2",
        "extension": [{"url": "https://example.org/x", "valueBoolean": "true"}],
        "contact": [{"name": {"family": "   "}}],
    }
    out = _outcome(client.post("/fhir/Patient", json=body, headers=H), 400)
    paths = {i["expression"][0] for i in out["issue"]}
    assert paths == {
        "Patient.active",
        "Patient.multipleBirthInteger",
        "Patient.extension[0].valueBoolean",
        "Patient.contact[0].name.family",
    }


def test_codes_of_required_bindings(client: TestClient) -> None:
    body = {
        **patient(),
        "gender": "L",  # laki-laki, as a clinic system writes it
        "telecom": [{"system": "hp", "value": "+6281234567890"}],
        "contact": [{"gender": "female"}],
        "identifier": [{"use": "official", "value": "1"}, {"use": "primary", "value": "2"}],
    }
    out = _outcome(client.post("/fhir/Patient", json=body, headers=H), 400)
    found = {i["expression"][0]: i for i in out["issue"]}
    assert set(found) == {
        "Patient.gender",
        "Patient.telecom[0].system",
        "Patient.identifier[1].use",
    }
    assert all(i["code"] == "code-invalid" for i in found.values())
    gender = found["Patient.gender"]["diagnostics"]
    assert "administrative-gender" in gender and "female, male, other, unknown" in gender
    # in data types inside choice elements too, and in a transaction with the entry's path
    obs = {
        "resourceType": "Observation",
        "status": "finished",
        "code": {"text": "Hb"},
        "valueQuantity": {"value": 9, "comparator": "=<"},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": obs, "request": {"method": "POST", "url": "Observation"}}],
    }
    out = _outcome(client.post("/fhir", json=bundle, headers=H), 400)
    assert {i["expression"][0] for i in out["issue"]} == {
        "Bundle.entry[0].resource.status",
        "Bundle.entry[0].resource.valueQuantity.comparator",
    }
    good = {**patient(), "gender": "male", "telecom": [{"system": "phone", "value": "1"}]}
    assert client.post("/fhir/Patient", json=good, headers=H).status_code == 201


def test_r4_only_types_are_accepted_and_checked(client: TestClient) -> None:
    name = [{"productName": "Paracetamol 500 mg"}]  # required in R4
    good = {"resourceType": "MedicinalProduct", "identifier": [{"value": "MP-1"}], "name": name}
    assert client.post("/fhir/MedicinalProduct", json=good, headers=H).status_code == 201
    bad = {"resourceType": "MedicinalProduct", "identifier": [{"value": 1}], "name": name}
    out = _outcome(client.post("/fhir/MedicinalProduct", json=bad, headers=H), 400)
    assert out["issue"][0]["expression"] == ["MedicinalProduct.identifier[0].value"]


def test_compressed_bodies_are_read_within_the_limit(client: TestClient) -> None:
    import gzip
    import json
    import zlib

    body = json.dumps(patient()).encode()
    for encoding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        headers = {**H, "content-encoding": encoding}
        r = client.post("/fhir/Patient", content=packed, headers=headers)
        assert r.status_code == 201, (encoding, r.text)
    bad = {**H, "content-encoding": "gzip"}
    _outcome(client.post("/fhir/Patient", content=b"not gzip at all", headers=bad), 400)
    _outcome(client.post("/fhir/Patient", content=gzip.compress(body)[:-12], headers=bad), 400)
    br = {**H, "content-encoding": "br"}
    _outcome(client.post("/fhir/Patient", content=body, headers=br), 415)
    # a small body that expands past the limit
    limit = client.app.state.settings.max_body_bytes
    bomb = gzip.compress(b" " * (limit + 10))
    assert len(bomb) < limit
    _outcome(client.post("/fhir/Patient", content=bomb, headers=bad), 413)


def test_responses_are_gzipped_for_clients_that_accept_it(client: TestClient) -> None:
    for i in range(20):
        client.post("/fhir/Patient", json=patient(nik=f"74720145019{i:05d}"), headers=H)
    r = client.get("/fhir/Patient", headers={"accept-encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert len(r.json()["entry"]) == 20  # httpx inflated it
    plain = client.get("/fhir/Patient", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
