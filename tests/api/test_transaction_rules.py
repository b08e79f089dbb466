"""Transaction and batch rules at their edges. http://hl7.org/fhir/R4/http.html#transaction"""

from __future__ import annotations

import pytest
from factories import NIK, patient
from fastapi.testclient import TestClient
from sql_statements import statements_run

H = {"content-type": "application/fhir+json"}


def _bundle(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


@pytest.mark.parametrize("res_type", ["Account", "Basic", "Binary", "Patient", "Parameters"])
def test_only_a_bundle_may_be_posted_to_the_base(client: TestClient, res_type: str) -> None:
    body = {"resourceType": res_type, "type": "transaction", "entry": []}
    r = client.post("/fhir", json=body, headers=H)
    assert r.status_code == 400
    assert r.json()["issue"][0]["code"] == "structure"
    assert r.json()["issue"][0]["expression"] == ["Bundle"]


def test_if_none_exist_matching_several_fails_the_transaction_with_412(
    client: TestClient,
) -> None:
    for _ in range(2):  # two Patients with the same NIK (no conditional create)
        assert client.post("/fhir/Patient", json=patient(), headers=H).status_code == 201
    entry = {
        "resource": patient(),
        "request": {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": f"identifier={NIK}|7472014501900001",
        },
    }
    r = client.post("/fhir", json=_bundle("transaction", entry), headers=H)
    assert r.status_code == 412
    assert r.json()["issue"][0]["code"] == "multiple-matches"
    found = client.get("/fhir/Patient", params={"_summary": "count"}).json()
    assert found["total"] == 2  # nothing was added


@pytest.mark.parametrize("url", ["Patient/", "Patient/a/b", "Patient"])
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_an_entry_that_names_no_single_resource_is_refused(
    client: TestClient, method: str, url: str
) -> None:
    entry: dict = {"request": {"method": method, "url": url}}
    if method == "PUT":
        entry["resource"] = {**patient(), "id": "a"}
    r = client.post("/fhir", json=_bundle("transaction", entry), headers=H)
    assert r.status_code == 400, r.text
    assert client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"] == 0


def test_a_head_entry_of_a_batch_answers_without_a_body(client: TestClient) -> None:
    created = client.put("/fhir/Patient/p1", json={**patient(), "id": "p1"}, headers=H)
    assert created.status_code == 201
    batch = _bundle(
        "batch",
        {"request": {"method": "GET", "url": "Patient/p1"}},
        {"request": {"method": "HEAD", "url": "Patient/p1"}},
        {"request": {"method": "HEAD", "url": "Patient/nobody"}},
    )
    r = client.post("/fhir", json=batch, headers=H)
    assert r.status_code == 200, r.text
    get, head, missing = r.json()["entry"]
    assert get["response"]["status"].startswith("200") and get["resource"]["id"] == "p1"
    assert head["response"]["status"].startswith("200") and "resource" not in head
    assert missing["response"]["status"].startswith("404") and "resource" not in missing


def _conditional(nik: str, condition: str | None = None) -> dict:
    return {
        "resource": patient(nik=nik),
        "request": {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": condition or f"identifier={NIK}|{nik}",
        },
    }


def test_the_conditional_creates_of_a_transaction_are_locked_and_matched_at_once(
    client: TestClient, db_url: str
) -> None:
    """Five ifNoneExist conditions: one lock statement (PostgreSQL) and one search for all of
    them, not one each; each entry still gets its own answer."""
    niks = [f"747201450190{i:04d}" for i in range(5)]
    known = {}
    for nik in niks[:2]:  # two exist already
        made = client.post("/fhir/Patient", json=patient(nik=nik), headers=H)
        known[nik] = made.json()["id"]
    with statements_run() as statements:
        r = client.post(
            "/fhir", json=_bundle("transaction", *(_conditional(n) for n in niks)), headers=H
        )
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["200 OK", "200 OK", "201 Created", "201 Created", "201 Created"]
    ids = [e["response"]["location"].split("/")[1] for e in r.json()["entry"]]
    assert ids[:2] == [known[n] for n in niks[:2]]
    assert len(set(ids)) == 5
    assert sum("UNION ALL" in s for s in statements) == 1
    locks = sum("hashtextextended(k, 0)" in s for s in statements)
    assert locks == (1 if db_url.startswith("postgresql") else 0)
    total = client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"]
    assert total == 5


def test_a_bad_condition_among_many_is_reported_at_its_own_entry(client: TestClient) -> None:
    entries = [
        _conditional("7472014501900001"),
        _conditional("7472014501900002"),
        _conditional("7472014501900003", "no-such-parameter=1"),
    ]
    r = client.post("/fhir", json=_bundle("transaction", *entries), headers=H)
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert any("Bundle.entry[2]" in x for i in r.json()["issue"] for x in i.get("expression", []))
    assert client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"] == 0
