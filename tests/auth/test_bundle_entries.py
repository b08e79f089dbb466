"""A Bundle's entries are authorised as the route reads them: a malformed entry gets the
route's own 400 naming the element (not a 403), a HEAD entry is a read, and an absolute URL on
this server's base is the relative one."""

from __future__ import annotations

from typing import Any

from auth_app import FHIR_JSON, AuthClient

from fhirhub.auth.roles import Role

PATIENT = {"resourceType": "Patient", "id": "p1", "active": True}


def _batch(*entries: dict[str, Any], kind: str = "batch") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_a_malformed_entry_is_a_400_naming_it(auth_app: AuthClient) -> None:
    headers = auth_app.headers(auth_app.as_role(Role.sync, "narrow-1", "system/Patient.rs"))
    for request, where in (
        ({"method": ["POST"], "url": "Patient"}, "Bundle.entry[0].request.method"),
        ({"method": "POST", "url": "https://other.example/fhir/Patient"}, "request.url"),
    ):
        entry = {"resource": PATIENT, "request": request}
        bundle = _batch(entry, kind="transaction")
        answer = auth_app.http.post("/fhir", json=bundle, headers=headers)
        assert answer.status_code == 400, answer.text
        assert where in str(answer.json()["issue"][0]["expression"])


def test_a_head_entry_is_a_read(auth_app: AuthClient) -> None:
    writer = auth_app.headers(auth_app.as_role(Role.sync), **FHIR_JSON)
    assert auth_app.http.put("/fhir/Patient/p1", json=PATIENT, headers=writer).status_code == 201
    reader = auth_app.headers(auth_app.as_role(Role.sync, "reader-1", "system/Patient.rs"))
    head = {"request": {"method": "HEAD", "url": "Patient/p1"}}
    answer = auth_app.http.post("/fhir", json=_batch(head), headers=reader)
    assert answer.status_code == 200, answer.text
    assert answer.json()["entry"][0]["response"]["status"].startswith("200")
    other = {"request": {"method": "HEAD", "url": "Observation/o1"}}
    assert auth_app.http.post("/fhir", json=_batch(other), headers=reader).status_code == 403


def test_an_entry_on_this_servers_base_is_authorised_by_its_type(auth_app: AuthClient) -> None:
    reader = auth_app.headers(auth_app.as_role(Role.sync, "reader-2", "system/Patient.rs"))
    own = {"request": {"method": "GET", "url": "http://testserver/fhir/Patient"}}
    assert auth_app.http.post("/fhir", json=_batch(own), headers=reader).status_code == 200
    obs = {"request": {"method": "GET", "url": "http://testserver/fhir/Observation"}}
    assert auth_app.http.post("/fhir", json=_batch(obs), headers=reader).status_code == 403


MALFORMED = ({"method": ["POST"], "url": "Patient"}, {"method": "POST", "url": "ftp://x/Patient"})


def test_a_transaction_with_several_malformed_entries_names_each(auth_app: AuthClient) -> None:
    """As without auth: the 400 names every malformed entry, not the first one only."""
    headers = auth_app.headers(auth_app.as_role(Role.sync))
    entries = [{"resource": PATIENT, "request": r} for r in MALFORMED]
    answer = auth_app.http.post("/fhir", json=_batch(*entries, kind="transaction"), headers=headers)
    assert answer.status_code == 400, answer.text
    where = " ".join(str(i.get("expression")) for i in answer.json()["issue"])
    assert "Bundle.entry[0]" in where and "Bundle.entry[1]" in where


def test_a_batchs_malformed_entry_gets_its_own_answer(auth_app: AuthClient) -> None:
    """A batch's entries stand alone: the malformed one is answered in the batch-response and
    the others still run, as without auth (a 400 for the whole batch refused good entries)."""
    headers = auth_app.headers(auth_app.as_role(Role.sync))
    good = {"resource": PATIENT, "request": {"method": "PUT", "url": "Patient/p1"}}
    bad = {"resource": PATIENT, "request": MALFORMED[0]}
    answer = auth_app.http.post("/fhir", json=_batch(bad, good), headers=headers)
    assert answer.status_code == 200, answer.text
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert statuses[0].startswith("400") and statuses[1].startswith("201"), statuses
