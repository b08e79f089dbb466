"""Batch entries are independent. http://hl7.org/fhir/R4/http.html#brules

"For a batch, there SHALL be no interdependencies between the different entries": each entry
gets its own status and, when it fails, its own OperationOutcome, and a failing entry's writes
are undone while every other entry's are kept, whatever the failure: a typed error (400, 404,
409, 412, 422) or an unexpected one (a bug, a database error), which is a 500 for that entry
alone, not for the batch.

The unexpected errors are made by patching a service to fail for one resource id only: after
the entry's rows were written (they must be rolled back), and by an SQL error that aborts a
PostgreSQL transaction (the entry's savepoint must recover it for the entries after).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest
from factories import patient
from fastapi.testclient import TestClient
from sqlalchemy import text

from fhirhub.services import read
from fhirhub.storage.repository import ResourceRepository, Write

H = {"content-type": "application/fhir+json"}


def _batch(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}


def _put(res_id: str, family: str = "Wa Ode Sitti") -> dict[str, Any]:
    return {
        "resource": {**patient(family=family), "id": res_id},
        "request": {"method": "PUT", "url": f"Patient/{res_id}"},
    }


def _post(family: str) -> dict[str, Any]:
    return {"resource": patient(family=family), "request": {"method": "POST", "url": "Patient"}}


def _statuses(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "batch-response"
    return [e["response"]["status"] for e in body["entry"]]


def _families(client: TestClient) -> list[str]:
    bundle = client.get("/fhir/Patient", params={"_count": 100}).json()
    return sorted(e["resource"]["name"][0]["family"] for e in bundle.get("entry", []))


def _versions_of(client: TestClient, res_id: str) -> int:
    engine = client.app.state.database.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM resource_versions WHERE res_id = :i"), {"i": res_id}
            ).scalar_one()
        )


def _fail_after_writing(monkeypatch: pytest.MonkeyPatch, res_id: str, how: str) -> None:
    """Make the storing of ``res_id`` write its rows and then fail: by a Python error or by
    an SQL error (which aborts a PostgreSQL transaction)."""
    apply = ResourceRepository.apply

    def failing(self: ResourceRepository, writes: Sequence[Write], rows: Any = ()) -> None:
        apply(self, writes, rows)
        if any(w.res_id == res_id for w in writes):
            if how == "sql":
                self.conn.execute(text("SELECT 1 / 0"))
            raise RuntimeError("boom (unexpected)")

    monkeypatch.setattr(ResourceRepository, "apply", failing)


@pytest.mark.parametrize("how", ["python", "sql"])
def test_an_unexpected_error_in_one_entry_fails_that_entry_alone(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    _fail_after_writing(monkeypatch, "boom", how)
    response = client.post(
        "/fhir",
        json=_batch(_post("Satu"), _put("boom", "Dua"), _post("Tiga"), _put("fine", "Empat")),
        headers=H,
    )
    assert _statuses(response) == ["201 Created", "500 Internal Server Error"] + ["201 Created"] * 2
    failed = response.json()["entry"][1]["response"]["outcome"]
    assert failed["resourceType"] == "OperationOutcome"
    assert failed["issue"][0]["code"] == "exception"
    assert failed["issue"][0]["expression"] == ["Bundle.entry[1]"]
    assert "boom" not in json.dumps(failed)  # the exception's message is not shown
    # The failing entry's rows are rolled back; every other entry's are kept.
    assert client.get("/fhir/Patient/boom").status_code == 404
    assert _versions_of(client, "boom") == 0
    assert _families(client) == ["Empat", "Satu", "Tiga"]


@pytest.mark.parametrize("how", ["python", "sql"])
def test_an_unexpected_error_in_a_get_entry_fails_that_entry_alone(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    client.put("/fhir/Patient/ada", json={**patient(family="Ada"), "id": "ada"}, headers=H)
    real_read = read.read

    def failing(repo: ResourceRepository, res_type: str, res_id: str) -> Any:
        if res_id == "boom":
            if how == "sql":
                repo.conn.execute(text("SELECT 1 / 0"))
            raise RuntimeError("boom (unexpected)")
        return real_read(repo, res_type, res_id)

    monkeypatch.setattr(read, "read", failing)
    response = client.post(
        "/fhir",
        json=_batch(
            _post("Satu"),
            {"request": {"method": "GET", "url": "Patient/boom"}},
            {"request": {"method": "GET", "url": "Patient/ada"}},
            _post("Tiga"),
        ),
        headers=H,
    )
    statuses = _statuses(response)
    assert statuses == ["201 Created", "500 Internal Server Error", "200 OK", "201 Created"]
    assert response.json()["entry"][2]["resource"]["id"] == "ada"
    assert _families(client) == ["Ada", "Satu", "Tiga"]


def test_typed_errors_of_entries_are_their_own(client: TestClient) -> None:
    """Each failing entry answers its own status and OperationOutcome; the rest are stored."""
    client.put("/fhir/Patient/ada", json={**patient(family="Ada"), "id": "ada"}, headers=H)
    client.put("/fhir/Patient/gone", json={**patient(family="Gone"), "id": "gone"}, headers=H)
    client.delete("/fhir/Patient/gone")
    patch = [{"op": "replace", "path": "/gender", "value": "male"}]
    bad_patch = [{"op": "remove", "path": "/no-such-element"}]

    def patch_entry(res_id: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        data = base64.b64encode(json.dumps(operations).encode()).decode()
        return {
            "resource": {
                "resourceType": "Binary",
                "contentType": "application/json-patch+json",
                "data": data,
            },
            "request": {"method": "PATCH", "url": f"Patient/{res_id}"},
        }

    entries = [
        _post("Satu"),  # 201
        {
            **_put("ada", "Ada2"),
            "request": {"method": "PUT", "url": "Patient/ada", "ifMatch": 'W/"7"'},
        },
        patch_entry("nobody", patch),  # 404
        patch_entry("gone", patch),  # 410
        patch_entry("ada", bad_patch),  # 422
        {
            "resource": {"resourceType": "Patient", "gender": "robot"},
            "request": {"method": "POST", "url": "Patient"},
        },
        {"request": {"method": "GET", "url": "Patient/nobody"}},  # 404
        _put("ada", "Ada3"),  # 200
    ]
    response = client.post("/fhir", json=_batch(*entries), headers=H)
    statuses = _statuses(response)
    assert [s.split()[0] for s in statuses] == [
        "201", "412", "404", "410", "422", "400", "404", "200",
    ]  # fmt: skip
    for i in (1, 2, 3, 4, 5):
        outcome = response.json()["entry"][i]["response"]["outcome"]
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"]
    assert _families(client) == ["Ada3", "Satu"]
    assert client.get("/fhir/Patient/ada").json()["meta"]["versionId"] == "2"
