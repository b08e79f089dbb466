"""history at instance, type and system level. http://hl7.org/fhir/R4/http.html#history"""

from __future__ import annotations

import time

from factories import patient
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}


def _ids(bundle: dict) -> list[tuple[str, str]]:
    return [
        (e["fullUrl"].rsplit("/", 1)[1], e["response"]["etag"]) for e in bundle.get("entry", [])
    ]


def test_instance_history_newest_first(client: TestClient) -> None:
    p = client.post("/fhir/Patient", json=patient(), headers=H).json()
    client.put(f"/fhir/Patient/{p['id']}", json={**p, "gender": "male"}, headers=H)
    r = client.get(f"/fhir/Patient/{p['id']}/_history")
    assert r.status_code == 200
    bundle = r.json()
    assert bundle["type"] == "history" and bundle["total"] == 2
    assert [e["response"]["etag"] for e in bundle["entry"]] == ['W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "POST"]
    assert bundle["entry"][1]["response"]["status"].startswith("201")
    assert bundle["entry"][0]["resource"]["gender"] == "male"


def test_type_and_system_history(client: TestClient) -> None:
    client.post("/fhir/Patient", json=patient(), headers=H)
    client.post(
        "/fhir/Organization", json={"resourceType": "Organization", "name": "PKM"}, headers=H
    )
    assert len(client.get("/fhir/Patient/_history").json()["entry"]) == 1
    entries = client.get("/fhir/_history").json()["entry"]
    kinds = [k for e in entries if (k := e["resource"]["resourceType"]) != "AuditEvent"]
    # with the patient index's Person and Provenance for the new Patient (AuditEvents aside)
    assert sorted(kinds) == ["Organization", "Patient", "Person", "Provenance"]
    assert client.get("/fhir/Spaceship/_history").status_code == 404


def test_since_is_inclusive_and_exact(client: TestClient) -> None:
    first = client.post("/fhir/Patient", json=patient(), headers=H).json()
    time.sleep(0.002)
    second = client.post("/fhir/Patient", json=patient(), headers=H).json()
    since = second["meta"]["lastUpdated"]
    r = client.get("/fhir/Patient/_history", params={"_since": since})
    assert [i for i, _ in _ids(r.json())] == [second["id"]]
    r = client.get("/fhir/Patient/_history", params={"_since": first["meta"]["lastUpdated"]})
    assert len(r.json()["entry"]) == 2
    bad = client.get("/fhir/Patient/_history", params={"_since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["_since"]


def test_paging_follows_next_links_without_repeats(client: TestClient) -> None:
    for _ in range(7):
        client.post("/fhir/Patient", json=patient(), headers=H)
    seen: list[tuple[str, str]] = []
    url: str | None = "/fhir/Patient/_history?_count=3"
    pages = 0
    while url:
        bundle = client.get(url).json()
        seen.extend(_ids(bundle))
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0].replace("http://testserver", "") if nxt else None
        pages += 1
        if pages == 1:  # a write between pages must not shift the next page
            client.post("/fhir/Patient", json=patient(), headers=H)
    assert pages == 3
    assert len(seen) == 7 == len(set(seen))
    assert client.get("/fhir/_history?_page=garbage").status_code == 400
    assert client.get("/fhir/_history?_count=x").status_code == 400
