"""Inputs that made the server answer 500 each get a 4xx OperationOutcome, on SQLite and
PostgreSQL alike, and the server goes on serving (issue 10, item 5).

NUL characters are refused everywhere (PostgreSQL cannot keep ``\\u0000`` in JSONB, so both
databases refuse them), numbers in the URL are bounded before they reach the database, JSON is
bounded in depth, and malformed transaction entries name their element.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from factories import observation, patient
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}
BIG = str(2**63)  # one past the largest id a BIGINT holds


def outcome(r: Any, status: int | tuple[int, ...] = 400) -> dict[str, Any]:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"] and all(i["severity"] in ("error", "fatal") for i in body["issue"])
    return body


def expressions(body: dict[str, Any]) -> list[str]:
    return [e for i in body["issue"] for e in i.get("expression", [])]


def cursor(data: dict[str, Any]) -> str:
    """A made-up ``_cursor`` in this server's encoding."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def still_serving(client: TestClient) -> None:
    assert client.get("/fhir/metadata").status_code == 200


@pytest.fixture
def stored(client: TestClient) -> dict[str, Any]:
    r = client.post("/fhir/Patient", json=patient(), headers=H)
    assert r.status_code == 201
    return dict(r.json())


# --- NUL characters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({**patient(), "name": [{"family": "Wa\u0000Ode"}]}, "Patient.name[0].family"),
        ({**patient(), "gender": "female\u0000"}, "Patient.gender"),
        ({**patient(), "x\u0000": 1}, "Patient"),
    ],
    ids=["in-a-string", "in-a-code", "in-a-key"],
)
def test_nul_in_a_body(client: TestClient, body: dict[str, Any], path: str) -> None:
    out = outcome(client.post("/fhir/Patient", content=json.dumps(body), headers=H))
    assert any(e.startswith(path) for e in expressions(out)), out
    raw = json.dumps(body).replace("\\u0000", "").encode()  # a raw NUL byte is refused too
    raw = raw.replace(b"Wa", b"Wa\x00", 1) if b"Wa" in raw else raw.replace(b"fe", b"fe\x00", 1)
    outcome(client.post("/fhir/Patient", content=raw, headers=H))
    still_serving(client)


def test_nul_in_an_update_and_a_transaction(client: TestClient, stored: dict[str, Any]) -> None:
    body = {**stored, "name": [{"family": "a\u0000"}]}
    out = outcome(client.put(f"/fhir/Patient/{stored['id']}", json=body, headers=H))
    assert expressions(out) == ["Patient.name[0].family"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": body, "request": {"method": "POST", "url": "Patient"}}],
    }
    outcome(client.post("/fhir", json=bundle, headers=H))
    still_serving(client)


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Patient?family=a%00b",
        "/fhir/Patient?identifier=x%00|y",
        "/fhir/Patient?fam%00ily=a",
        "/fhir/Patient?_id=a%00",
        "/fhir/Patient/a%00b",
        "/fhir/Patient/a%00b/_history",
        "/fhir/Patient/a/_history/1%00",
        "/fhir/Pat%00ient",
        "/fhir/Patient/_history?_since=2020%00",
    ],
)
def test_nul_in_a_url(client: TestClient, url: str) -> None:
    outcome(client.get(url), (400, 404))
    still_serving(client)


def test_nul_in_headers(client: TestClient, stored: dict[str, Any]) -> None:
    pid = stored["id"]
    r = client.post(
        "/fhir/Patient",
        json=patient(nik="7472014501900002"),
        headers={**H, "If-None-Exist": "identifier=a%00b"},
    )
    outcome(r)
    r = client.put(f"/fhir/Patient/{pid}", json=stored, headers={**H, "If-Match": 'W/"1%00"'})
    outcome(r, (400, 412))
    outcome(client.delete("/fhir/Patient?identifier=x%00"))
    still_serving(client)


def test_nul_in_an_ingest_payload(client: TestClient) -> None:
    for mode in ("async", "sync"):
        r = client.post(
            f"/ingest/puskesmas?mode={mode}",
            content=b'{"resourceType": "Bundle", "type": "transaction", "id": "a\\u0000"}',
            headers=H,
        )
        outcome(r)
        r = client.post(f"/ingest/puskesmas?mode={mode}", content=b"MSH|\x00|", headers=H)
        outcome(r)
    assert client.get("/admin/inbox").json()["messages"] == []  # nothing kept
    still_serving(client)


# --- numbers in the URL ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Patient?_count=%C2%B2",  # ²
        "/fhir/Patient?_count=" + "9" * 5000,
        "/fhir/Patient?_count=" + BIG,
        "/fhir/Patient/_history?_count=%C2%B2",
        "/fhir/_history?_count=" + "9" * 5000,
        "/fhir/Patient/_history?_page=" + "9" * 30,
        "/fhir/_history?_page=" + "9" * 5000,
        "/fhir/Patient/_history?_page=%C2%B2",
        "/fhir/Patient/_history?_page=" + "_".join([BIG, "1", "1"]),
        "/fhir/_history?_page=" + "_".join(["1", "-" + "9" * 25, "1"]),
        "/fhir/_history?_page=" + "_".join(["1", "1", str(2**31)]),
        "/fhir/Patient/_history?_page=1_1_" + "9" * 5000,
        "/fhir/Patient?_cursor=made-up",
        "/fhir/Patient?_cursor=" + "9" * 5000,
        "/fhir/Patient?_cursor=eyJ4IjoxfQ",
        "/fhir/Patient?_cursor=" + cursor({"d": "n", "k": [2**70], "cut": 1, "sort": ""}),
        "/fhir/Patient?_cursor=" + cursor({"d": "n", "k": ["x"], "cut": 1, "sort": ""}),
        "/fhir/Patient?_cursor=" + cursor({"d": "n", "k": [1, 2], "cut": 1, "sort": ""}),
        "/fhir/Patient?_cursor=" + cursor({"d": "p", "k": [1], "cut": 2**64, "sort": ""}),
        "/fhir/Patient?_cursor=" + cursor({"d": "n", "k": [1], "cut": "1", "sort": ""}),
        "/fhir/Patient?_sort=birthdate&_cursor="
        + cursor({"d": "n", "k": ["soon", 1], "cut": 9, "sort": "birthdate"}),
        "/fhir/Patient?_sort=-family&_cursor="
        + cursor({"d": "n", "k": [{"a": 1}, 1], "cut": 9, "sort": "-family"}),
        "/fhir/Observation?value-quantity=1e400",
        "/fhir/Observation?value-quantity=-1e400|http://unitsofmeasure.org|mm[Hg]",
        "/fhir/Observation?value-quantity=ap1e308",
        "/fhir/Observation?value-quantity=nan",
        "/fhir/Observation?component-value-quantity=1e99999",
        "/fhir/RiskAssessment?probability=1e400",
    ],
)
def test_numbers_out_of_range_in_a_search(client: TestClient, url: str) -> None:
    client.post("/fhir/Observation", json=observation("Patient/x"), headers=H)
    outcome(client.get(url))
    still_serving(client)


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Observation?value-quantity=1e-99999999",
        "/fhir/Observation?value-quantity=gt1e-400",
        "/fhir/Observation?value-quantity=1e-" + "9" * 5000,
        "/fhir/Observation?value-quantity=0.000000000000000000000000000000000000001e-300",
    ],
)
def test_numbers_near_zero_are_searched(client: TestClient, url: str) -> None:
    client.post("/fhir/Observation", json=observation("Patient/x"), headers=H)
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.json()["resourceType"] == "Bundle"


@pytest.mark.parametrize(
    "version", ["%C2%B2", "9" * 20, BIG, "9" * 5000, "-1", "1.5", str(2**31), "10000000000"]
)
def test_vread_versions_out_of_range(
    client: TestClient, stored: dict[str, Any], version: str
) -> None:
    outcome(client.get(f"/fhir/Patient/{stored['id']}/_history/{version}"), (400, 404))
    still_serving(client)


@pytest.mark.parametrize(
    "etag",
    ['W/"' + "9" * 5000 + '"', 'W/"' + BIG + '"', 'W/"²"', '"' + "9" * 20 + '"', f'W/"{2**31}"'],
)
def test_if_match_out_of_range(client: TestClient, stored: dict[str, Any], etag: str) -> None:
    pid = stored["id"]
    r = client.put(f"/fhir/Patient/{pid}", json=stored, headers={**H, "If-Match": etag.encode()})
    outcome(r, (400, 412))
    r = client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": etag.encode()})
    assert r.status_code in (200, 400), r.text
    still_serving(client)


# --- deep JSON -------------------------------------------------------------------------------


def test_json_over_a_thousand_levels_deep(client: TestClient) -> None:
    for number in ("1.50", "1"):
        deep = '{"resourceType": "Patient", "x": ' + "[" * 1200 + number + "]" * 1200 + "}"
        out = outcome(client.post("/fhir/Patient", content=deep, headers=H))
        assert out["issue"][0]["code"] in ("structure", "too-costly")
    still_serving(client)


def _nested_extension(depth: int) -> dict[str, Any]:
    ext: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range(depth):
        ext = {"url": "http://example.org/nest", "extension": [ext]}
    return ext


def test_extensions_nested_200_deep(client: TestClient) -> None:
    body = {**patient(), "extension": [_nested_extension(200)]}
    outcome(client.post("/fhir/Patient", json=body, headers=H), (400, 422))
    still_serving(client)


def test_contained_nested_500_deep(client: TestClient) -> None:
    head = json.dumps(patient())[:-1] + ', "contained": ['
    nested = '{"resourceType": "Patient", "id": "p", "contained": [' * 500
    body = head + nested + '{"resourceType": "Patient", "id": "q"}' + "]}" * 500 + "]}"
    out = outcome(client.post("/fhir/Patient", content=body, headers=H))
    assert out["issue"][0]["code"] in ("too-costly", "structure")
    still_serving(client)


def test_contained_inside_contained_is_dom_2(client: TestClient) -> None:
    inner = {"resourceType": "Patient", "id": "b"}
    outer = {"resourceType": "Patient", "id": "a", "contained": [inner]}
    out = outcome(client.post("/fhir/Patient", json={**patient(), "contained": [outer]}, headers=H))
    assert "Patient.contained[0].contained" in expressions(out)
    assert "dom-2" in json.dumps(out)


# --- transaction entries ---------------------------------------------------------------------


def _bundle(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


@pytest.mark.parametrize("kind", ["transaction", "batch"])
@pytest.mark.parametrize(
    ("request_", "path"),
    [
        ({"method": ["POST"], "url": "Patient"}, "request.method"),
        ({"method": {"x": 1}, "url": "Patient"}, "request.method"),
        ({"method": "POST", "url": ["Patient"]}, "request.url"),
        ({"method": "POST", "url": "Patient", "ifNoneExist": ["identifier=a"]}, "ifNoneExist"),
        ({"method": "POST", "url": "Patient", "ifNoneExist": 7}, "ifNoneExist"),
        ({"method": "PUT", "url": "Patient/a", "ifMatch": 1}, "ifMatch"),
        ({"method": "PUT", "url": "Patient/a", "ifMatch": {"v": 1}}, "ifMatch"),
        ({"method": "PUT", "url": "Patient/a", "ifNoneMatch": [1]}, "ifNoneMatch"),
    ],
)
def test_transaction_entries_of_the_wrong_shape(
    client: TestClient, kind: str, request_: dict[str, Any], path: str
) -> None:
    entry = {"resource": {**patient(), "id": "a"}, "request": request_}
    r = client.post("/fhir", json=_bundle(entry, kind=kind), headers=H)
    if kind == "batch" and r.status_code == 200:  # the entry's own outcome
        response = r.json()["entry"][0]["response"]
        assert response["status"].startswith("4")
        assert path in json.dumps(response["outcome"])
    else:
        out = outcome(r)
        assert any(path in e for e in expressions(out)), out
    still_serving(client)


@pytest.mark.parametrize(
    "data",
    [
        "not base64!!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b'{"op": "replace"}').decode(),
        base64.b64encode(b"\xff\xfe").decode(),
        12,
    ],
)
def test_patch_binary_that_is_not_a_json_patch(
    client: TestClient, stored: dict[str, Any], data: Any
) -> None:
    entry = {
        "resource": {
            "resourceType": "Binary",
            "contentType": "application/json-patch+json",
            "data": data,
        },
        "request": {"method": "PATCH", "url": f"Patient/{stored['id']}"},
    }
    out = outcome(client.post("/fhir", json=_bundle(entry), headers=H))
    assert any("entry[0].resource" in e for e in expressions(out)), out
    still_serving(client)


# --- ids, content types and concurrency at the ingest and admin edges -------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"/admin/inbox/{BIG}",
        f"/admin/inbox/{BIG}/payload",
        f"/ingest/status/{BIG}",
        "/ingest/status/" + "9" * 5000,
        f"/admin/inbox?after={BIG}",
    ],
)
def test_ids_over_a_bigint(client: TestClient, url: str) -> None:
    outcome(client.get(url), (400, 404))
    outcome(client.post(f"/admin/inbox/{BIG}/replay"), (400, 404))
    still_serving(client)


@pytest.mark.parametrize(
    "ctype", ["application/fhir+json; x=" + "a" * 5000, "application/fhir+json; x=ä", "a\tb"]
)
def test_an_ingest_content_type_of_5_kb_or_not_ascii(client: TestClient, ctype: str) -> None:
    for mode in ("async", "sync"):
        r = client.post(
            f"/ingest/puskesmas?mode={mode}",
            content=b"{}",
            headers={"content-type": ctype.encode()},
        )
        outcome(r, (400, 415))
    still_serving(client)


# --- methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
def test_metadata_takes_only_get(client: TestClient, method: str) -> None:
    r = client.request(method, "/fhir/metadata", content=b"{}", headers=H)
    out = outcome(r, 405)
    assert out["issue"][0]["code"] == "not-supported"
    assert "GET" in r.headers["allow"]


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/metadata",
        "/fhir/Patient",
        "/fhir/Patient/{id}",
        "/fhir/Patient/{id}/_history",
        "/fhir/Patient/{id}/_history/1",
        "/fhir/_history",
        "/fhir/Patient/_history",
    ],
)
def test_head_on_reads(client: TestClient, stored: dict[str, Any], url: str) -> None:
    get = client.get(url.format(id=stored["id"]))
    head = client.head(url.format(id=stored["id"]))
    assert get.status_code == 200
    assert head.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
