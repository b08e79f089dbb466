"""The patient index in the write path: every Patient write, by any route, leaves the record in
exactly one Person; review Tasks, steward decisions, Provenance and $match (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest
from factories import NIK, patient
from fastapi.testclient import TestClient
from sql_statements import statements_run

FHIR = {"Content-Type": "application/fhir+json"}
MRN = "https://fhirhub.baubaukota.go.id/sid/mrn/"


def record(facility: str, number: str, **extra: Any) -> dict[str, Any]:
    body = patient(**{k: v for k, v in extra.items() if k in ("nik", "family")})
    body["identifier"].append({"system": MRN + facility, "value": number})
    body.update({k: v for k, v in extra.items() if k not in ("nik", "family")})
    return body


def create(client: TestClient, body: dict[str, Any]) -> str:
    r = client.post("/fhir/Patient", json=body, headers=FHIR)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def person_of(client: TestClient, pid: str) -> dict[str, Any]:
    bundle = client.get(f"/fhir/Person?link=Patient/{pid}").json()
    assert bundle["total"] == 1, bundle
    return dict(bundle["entry"][0]["resource"])


def linked(person: dict[str, Any]) -> dict[str, str]:
    return {x["target"]["reference"].split("/")[1]: x["assurance"] for x in person["link"]}


def persons(client: TestClient) -> int:
    return int(client.get("/fhir/Person?_summary=count").json()["total"])


def open_reviews(client: TestClient) -> list[dict[str, Any]]:
    bundle = client.get("/fhir/Task?code=mpi-review&status=requested").json()
    return [e["resource"] for e in bundle.get("entry", [])]


def params(**values: Any) -> dict[str, Any]:
    out = []
    for name, value in values.items():
        if isinstance(value, dict):
            out.append({"name": name, "resource": value})
        elif isinstance(value, bool):
            out.append({"name": name, "valueBoolean": value})
        elif isinstance(value, int):
            out.append({"name": name, "valueInteger": value})
        else:
            out.append({"name": name, "valueReference": {"reference": value}})
    return {"resourceType": "Parameters", "parameter": out}


def test_records_of_one_citizen_from_two_facilities_are_one_person(client: TestClient):
    a = create(client, record("pkm01", "000123"))
    b = create(client, record("rsud01", "RM-77"))
    person = person_of(client, a)
    assert linked(person) == {a: "level3", b: "level3"}
    assert person_of(client, b)["id"] == person["id"]
    assert person["identifier"] == [{"system": NIK, "value": "7472014501900001"}]
    assert person["birthDate"] == "1990-01-05"
    assert persons(client) == 1


def test_two_valid_niks_are_never_linked(client: TestClient):
    a = create(client, record("pkm01", "1", nik="7472014501900001"))
    b = create(client, record("pkm02", "2", nik="7472024501900007"))
    assert person_of(client, a)["id"] != person_of(client, b)["id"]
    assert open_reviews(client) == []


def test_a_transaction_of_two_records_of_one_citizen_makes_one_person(client: TestClient):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": record("clinic-a", "9"), "request": {"method": "POST", "url": "Patient"}},
            {"resource": record("clinic-b", "8"), "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    r = client.post("/fhir", json=bundle, headers=FHIR)
    assert r.status_code == 200, r.text
    ids = [e["response"]["location"].split("/")[1] for e in r.json()["entry"]]
    assert set(linked(person_of(client, ids[0]))) == set(ids)
    assert persons(client) == 1


def test_deleting_a_record_unlinks_it_and_an_empty_person_is_deleted(client: TestClient):
    a = create(client, record("pkm01", "1"))
    b = create(client, record("pkm02", "2"))
    person_id = person_of(client, a)["id"]
    assert client.delete(f"/fhir/Patient/{b}").status_code == 204
    assert linked(person_of(client, a)) == {a: "level3"}
    assert client.delete(f"/fhir/Patient/{a}").status_code == 204
    assert client.get(f"/fhir/Person/{person_id}").status_code == 410
    history = client.get(f"/fhir/Person/{person_id}/_history").json()
    assert history["total"] >= 3  # created, b linked, b unlinked (and deleted)


def test_an_update_that_changes_the_nik_moves_the_record_out(client: TestClient):
    a = create(client, record("pkm01", "1"))
    b_body = record("pkm02", "2")
    b = create(client, b_body)
    assert person_of(client, a)["id"] == person_of(client, b)["id"]
    b_body = {**b_body, "id": b, "identifier": [{"system": NIK, "value": "7472024501900007"}]}
    assert client.put(f"/fhir/Patient/{b}", json=b_body, headers=FHIR).status_code == 200
    assert person_of(client, a)["id"] != person_of(client, b)["id"]
    assert linked(person_of(client, a)) == {a: "level3"}


def test_records_updated_together_ask_once_which_records_their_persons_hold(
    client: TestClient,
) -> None:
    # four citizens, each one record and one Person; one transaction updates every record,
    # none finding a new candidate: each stays in its Person, and whether the Person holds
    # other records is read for all four in one statement (it was one a record)
    people = [
        ("7472014501900001", "Wa Ode Sitti"),
        ("7472021208850002", "La Ode Baharudin"),
        ("7472035503770003", "Nur Aisyah"),
        ("7472041010660004", "Muhammad Arif"),
    ]
    ids = [
        create(client, record("clinic-a", str(i), nik=nik, family=name))
        for i, (nik, name) in enumerate(people)
    ]
    before = {pid: person_of(client, pid)["id"] for pid in ids}
    assert len(set(before.values())) == 4
    entries = []
    for pid in ids:
        body = client.get(f"/fhir/Patient/{pid}").json()
        body["telecom"] = [{"system": "phone", "value": f"+62812345678{len(entries)}"}]
        entries.append({"resource": body, "request": {"method": "PUT", "url": f"Patient/{pid}"}})
    with statements_run() as statements:
        r = client.post(
            "/fhir",
            json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
            headers=FHIR,
        )
    assert r.status_code == 200, r.text
    assert {pid: person_of(client, pid)["id"] for pid in ids} == before
    by_person = [s for s in statements if "WHERE mpi_records.person_id" in s]
    # one for the question, one for the Persons' rewrite under their locks
    assert len(by_person) == 2, by_person


def test_a_client_cannot_write_a_person(client: TestClient):
    body = {"resourceType": "Person", "name": [{"text": "X"}]}
    r = client.post("/fhir/Person", json=body, headers=FHIR)
    assert r.status_code == 405
    assert r.json()["resourceType"] == "OperationOutcome"
    a = create(client, record("pkm01", "1"))
    person = person_of(client, a)
    r = client.put(f"/fhir/Person/{person['id']}", json=person, headers=FHIR)
    assert r.status_code == 405
    assert client.delete(f"/fhir/Person/{person['id']}").status_code == 405
    entry = {"resource": body, "request": {"method": "POST", "url": "Person"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    assert client.post("/fhir", json=bundle, headers=FHIR).status_code == 405


def test_a_possible_match_becomes_a_review_task_a_steward_decides(client: TestClient):
    # The same NIK, but a birth date its NIK contradicts: at most a review.
    a = create(client, record("pkm01", "1"))
    b = create(client, record("pkm02", "2", birthDate="1991-03-05"))
    assert person_of(client, a)["id"] != person_of(client, b)["id"]
    (task,) = open_reviews(client)
    refs = {i["valueReference"]["reference"] for i in task["input"] if "valueReference" in i}
    assert refs == {f"Patient/{a}", f"Patient/{b}"}
    assert any(i["type"]["text"] == "probability" for i in task["input"])
    assert any(i["type"]["text"].startswith("weight:") for i in task["input"])

    r = client.post(
        "/fhir/Patient/$mpi-link", json=params(source=f"Patient/{b}", target=f"Patient/{a}"),
        headers=FHIR,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    person = person_of(client, a)
    assert linked(person) == {a: "level4", b: "level4"}
    assert open_reviews(client) == []
    done = client.get(f"/fhir/Task/{task['id']}").json()
    assert done["status"] == "completed"
    assert done["output"][0]["valueString"] == "same person"
    prov = client.get(f"/fhir/Provenance?target=Person/{person['id']}").json()
    assert any(
        e["resource"]["agent"][0]["type"]["coding"][0]["code"] == "verifier" for e in prov["entry"]
    )

    # Undone by the other decision; later writes never undo it.
    r = client.post("/fhir/Patient/$mpi-unlink", json=params(source=f"Patient/{b}"), headers=FHIR)
    assert r.status_code == 200, r.text
    assert person_of(client, a)["id"] != person_of(client, b)["id"]
    body = client.get(f"/fhir/Patient/{b}").json()
    body["birthDate"] = "1990-01-05"  # now it would link automatically
    assert client.put(f"/fhir/Patient/{b}", json=body, headers=FHIR).status_code == 200
    assert person_of(client, a)["id"] != person_of(client, b)["id"]


def test_match_scores_candidates_and_creates_nothing(client: TestClient):
    a = create(client, record("pkm01", "1"))
    create(client, record("pkm02", "2", nik="7472024501900007", family="Wa Ode Sitti"))
    before = persons(client)
    probe = patient()
    r = client.post("/fhir/Patient/$match", json=params(resource=probe), headers=FHIR)
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "searchset"
    first = bundle["entry"][0]
    assert first["resource"]["id"] == a
    assert first["search"]["mode"] == "match"
    assert first["search"]["extension"][0]["valueCode"] == "certain"
    assert 0.99 <= first["search"]["score"] <= 1
    assert all(e["resource"]["id"] == a for e in bundle["entry"])  # the other NIK: certainly not
    only = client.post(
        "/fhir/Patient/$match",
        json=params(resource={**probe, "birthDate": "1990-01-06"}, onlyCertainMatches=True),
        headers=FHIR,
    ).json()
    assert all(e["search"]["extension"][0]["valueCode"] == "certain" for e in only["entry"])
    assert persons(client) == before
    assert client.get("/fhir/Patient?_summary=count").json()["total"] == 2


def test_match_refuses_bad_parameters(client: TestClient):
    cases = [
        ({"resourceType": "Parameters", "parameter": []}, "Parameters.parameter[resource]"),
        (params(resource={"resourceType": "Observation"}), "Parameters.parameter[resource]"),
        (params(resource=patient(), count=0), "Parameters.parameter[count]"),
        (params(resource={**patient(), "gender": "x"}), "Patient.gender"),
    ]
    for body, where in cases:
        r = client.post("/fhir/Patient/$match", json=body, headers=FHIR)
        assert r.status_code == 400, (body, r.text)
        assert where in r.text


def test_steward_operations_refuse_unknown_records(client: TestClient):
    a = create(client, record("pkm01", "1"))
    r = client.post(
        "/fhir/Patient/$mpi-link", json=params(source=f"Patient/{a}", target="Patient/nope"),
        headers=FHIR,
    )  # fmt: skip
    assert r.status_code == 404
    r = client.post("/fhir/Patient/$mpi-unlink", json=params(source=f"Patient/{a}"), headers=FHIR)
    assert r.status_code == 409  # the only record of its Person


def test_a_crowded_identifier_block_sends_the_record_to_review_a_crowded_phone_does_not(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    from fhirhub.services import patient_index

    monkeypatch.setattr(patient_index, "MAX_BLOCK", 2)
    card = {"system": "https://fhir.bpjs-kesehatan.go.id/id/no-kartu", "value": "0001234567890"}
    phone = [{"system": "phone", "value": "+6281234567890"}]
    for name, born in [("Budi", "1971-02-03"), ("Hasan", "1982-04-05"), ("Rahmat", "1993-06-07")]:
        body = {"resourceType": "Patient", "name": [{"text": name}], "birthDate": born}
        create(client, {**body, "identifier": [card], "gender": "male"})
    for name, born in [("Ani", "1974-08-09"), ("Ina", "1985-10-11"), ("Ode", "1996-12-01")]:
        body = {"resourceType": "Patient", "name": [{"text": name}], "birthDate": born}
        create(client, {**body, "telecom": phone, "gender": "female"})
    before = {t["id"] for t in open_reviews(client)}  # one card, three names: reviews
    sitti = create(
        client, {"resourceType": "Patient", "name": [{"text": "Sitti"}], "identifier": [card]}
    )
    create(client, {"resourceType": "Patient", "name": [{"text": "Wa Ina"}], "telecom": phone})
    new = [t for t in open_reviews(client) if t["id"] not in before]
    reasons = [[i["valueString"] for i in t["input"] if i["type"]["text"] == "reason"] for t in new]
    crowded = [r for r in reasons if any(x.startswith("blocks over") for x in r)]
    assert crowded == [["blocks over 2 records: bpjs"]]  # the kind of key, never its value
    (task,) = [t for t in new if t["input"][0]["valueReference"]["reference"] == f"Patient/{sitti}"]
    assert len([i for i in task["input"] if "valueReference" in i]) == 1
