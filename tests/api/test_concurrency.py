"""Race-free conditional create. http://hl7.org/fhir/R4/http.html#ccreate

32 clients, each on its own HTTP connection to a real server process (two workers, so the
race crosses processes as well as threads), send the same conditional create at the same
moment: exactly one resource is created and every client is given that one. Transactions
that create the same two resources conditionally, named in either order, all succeed.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from fhirhub.storage.engine import make_engine
from tests.api.conftest import LiveServer
from tests.api.factories import NIK, patient

CLIENTS = 32


def _all_at_once(
    server: LiveServer, requests: list[tuple[str, str, bytes, dict[str, str]]]
) -> list:
    """Send one request per thread, each thread on its own connection, released together."""
    barrier = threading.Barrier(len(requests))
    results: list[Any] = [None] * len(requests)

    def client(i: int) -> None:
        method, path, body, headers = requests[i]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        try:
            conn.connect()
            barrier.wait(timeout=30)
            conn.request(method, path, body=body, headers={**server.headers, **headers})
            resp = conn.getresponse()
            results[i] = (resp.status, dict(resp.getheaders()), json.loads(resp.read() or b"{}"))
        except Exception as exc:  # reported by the assertion below
            results[i] = exc
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures = [r for r in results if isinstance(r, Exception)]
    assert not failures, failures[:3]
    return results


def _stored(db_url: str, res_type: str) -> list[str]:
    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    text("SELECT res_id FROM resources WHERE res_type = :t AND NOT deleted"),
                    {"t": res_type},
                ).scalars()
            )
    finally:
        engine.dispose()


def test_concurrent_conditional_creates_make_one_resource(
    live_server_factory: Callable[..., LiveServer], db_url: str
) -> None:
    # One server for both races: starting one costs more than the races themselves.
    server = live_server_factory(workers=2)
    _rest_conditional_creates(server, db_url)
    _transaction_conditional_creates(server, db_url)
    _crossed_conditions(server, db_url, "POST")
    _crossed_conditions(server, db_url, "PUT")


def _rest_conditional_creates(server: LiveServer, db_url: str) -> None:
    """POST /fhir/Patient with If-None-Exist, 32 at once, twice."""
    for round_ in range(2):  # a second NIK: the race again, with the tables no longer empty
        nik = f"74720145019{round_}{uuid.uuid4().int % 10**4:04}"
        headers = {
            "Content-Type": "application/fhir+json",
            "If-None-Exist": f"identifier={NIK}|{nik}",
        }
        body = json.dumps(patient(nik=nik)).encode()
        results = _all_at_once(server, [("POST", "/fhir/Patient", body, headers)] * CLIENTS)

        statuses = sorted(status for status, _, _ in results)
        assert statuses == [200] * (CLIENTS - 1) + [201], statuses
        ids = {resource["id"] for _, _, resource in results}
        assert len(ids) == 1, ids
        assert {res["identifier"][0]["value"] for _, _, res in results} == {nik}
        assert len(_stored(db_url, "Patient")) == round_ + 1


def _transaction_conditional_creates(server: LiveServer, db_url: str) -> None:
    """32 transaction bundles at once, each a Patient with ifNoneExist and an Observation
    referring to it by urn:uuid: one Patient, and every Observation refers to it."""
    known = set(_stored(db_url, "Patient"))
    nik = f"7472014501{uuid.uuid4().int % 10**6:06}"

    def bundle(i: int) -> bytes:
        return json.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": "urn:uuid:6f2bd1b4-0000-4000-8000-000000000001",
                        "resource": patient(nik=nik),
                        "request": {
                            "method": "POST",
                            "url": "Patient",
                            "ifNoneExist": f"identifier={NIK}|{nik}",
                        },
                    },
                    {
                        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                        "resource": {
                            "resourceType": "Observation",
                            "status": "final",
                            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                            "subject": {
                                "reference": "urn:uuid:6f2bd1b4-0000-4000-8000-000000000001"
                            },
                            "valueQuantity": {"value": 50 + i, "unit": "kg"},
                        },
                        "request": {"method": "POST", "url": "Observation"},
                    },
                ],
            }
        ).encode()

    headers = {"Content-Type": "application/fhir+json", "Prefer": "return=representation"}
    results = _all_at_once(server, [("POST", "/fhir", bundle(i), headers) for i in range(CLIENTS)])

    assert {status for status, _, _ in results} == {200}
    patient_statuses = sorted(b["entry"][0]["response"]["status"] for _, _, b in results)
    assert patient_statuses == ["200 OK"] * (CLIENTS - 1) + ["201 Created"]
    patient_ids = {b["entry"][0]["resource"]["id"] for _, _, b in results}
    assert len(patient_ids) == 1
    (patient_id,) = patient_ids
    subjects = {b["entry"][1]["resource"]["subject"]["reference"] for _, _, b in results}
    assert subjects == {f"Patient/{patient_id}"}
    assert set(_stored(db_url, "Patient")) - known == {patient_id}
    assert len(_stored(db_url, "Observation")) == CLIENTS


def _crossed_conditions(server: LiveServer, db_url: str, method: str) -> None:
    """32 transaction bundles at once, each writing the same two Patients by a condition (a
    conditional create, or a conditional update), half of them naming the two in the other
    order: one Patient each, and every client answered 200. A transaction's conditions are
    locked in one order, whatever its entries' (locked in the entries' order, two such
    transactions deadlocked, and clients got 409 and 503)."""
    known = set(_stored(db_url, "Patient"))
    niks = [f"7472014501{uuid.uuid4().int % 10**6:06}" for _ in range(2)]

    def entry(nik: str) -> dict[str, Any]:
        condition = f"identifier={NIK}|{nik}"
        if method == "POST":
            request = {"method": "POST", "url": "Patient", "ifNoneExist": condition}
        else:
            request = {"method": "PUT", "url": f"Patient?{condition}"}
        return {"resource": patient(nik=nik), "request": request}

    def bundle(i: int) -> bytes:
        ordered = niks if i % 2 else niks[::-1]
        entries = [entry(n) for n in ordered]
        return json.dumps(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        ).encode()

    headers = {"Content-Type": "application/fhir+json"}
    results = _all_at_once(server, [("POST", "/fhir", bundle(i), headers) for i in range(CLIENTS)])

    assert {status for status, _, _ in results} == {200}, method
    assert len(set(_stored(db_url, "Patient")) - known) == 2
