"""Versions of one resource are ordered: meta.lastUpdated grows with every version whatever the
writer's clock says, and If-Match names a live version only.
http://hl7.org/fhir/R4/http.html#update, #concurrency"""

from __future__ import annotations

import orjson
from factories import patient
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fhirhub.model.instant import parse_instant
from fhirhub.services.writes import Writer
from fhirhub.storage.repository import ResourceRepository

H = {"content-type": "application/fhir+json"}
TICK = 1_780_000_000_000_000  # one reading of the clock, in µs


def _body(gender: str) -> dict:
    return {**patient(), "id": "pasien-1", "gender": gender}


def _stored_last_updated(engine: Engine) -> list[int]:
    """lastUpdated of every stored version of Patient/pasien-1, oldest first."""
    with engine.connect() as conn:
        repo = ResourceRepository(conn)
        out = []
        for v in range(1, 10):
            stored = repo.version("Patient", "pasien-1", v)
            if stored is None:
                break
            if stored.content is None:  # a deletion has no body
                out.append(stored.last_updated)
                continue
            meta = orjson.loads(stored.content)["meta"]
            assert parse_instant(meta["lastUpdated"], "lastUpdated") == stored.last_updated
            out.append(stored.last_updated)
        return out


def test_last_updated_increases_within_one_clock_tick(engine: Engine) -> None:
    """Two versions written with the same clock reading (one transaction, or a coarse clock)
    still get strictly increasing lastUpdated values, so _history and _since order them."""
    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn), now=TICK)
        first = writer.update("Patient", "pasien-1", _body("female"), validated=True)
        second = writer.update("Patient", "pasien-1", _body("male"), validated=True)
        writer.flush()
    assert (first.version, second.version) == (1, 2)
    assert first.last_updated == TICK
    assert second.last_updated == TICK + 1
    assert _stored_last_updated(engine) == [TICK, TICK + 1]


def test_last_updated_increases_across_writers_with_a_clock_behind(engine: Engine) -> None:
    """A worker whose clock is five seconds behind the one that wrote the previous version
    still writes a later lastUpdated (one microsecond after the previous version's)."""
    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn), now=TICK)
        writer.update("Patient", "pasien-1", _body("female"), validated=True)
        writer.flush()
    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn), now=TICK - 5_000_000)
        late = writer.update("Patient", "pasien-1", _body("male"), validated=True)
        writer.flush()
    assert late.last_updated == TICK + 1
    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn), now=TICK - 5_000_000)
        gone = writer.delete("Patient", "pasien-1")
        writer.flush()
    assert gone.last_updated == TICK + 2
    assert _stored_last_updated(engine) == [TICK, TICK + 1, TICK + 2]


def test_if_match_on_a_deleted_resource_is_412(client: TestClient) -> None:
    """After a delete there is no current version: If-Match naming the deletion's version (or
    any other) fails with 412 and the resource stays deleted."""
    created = client.put("/fhir/Patient/pasien-1", json=_body("female"), headers=H)
    assert created.status_code == 201
    deleted = client.delete("/fhir/Patient/pasien-1")
    assert deleted.status_code == 204
    assert deleted.headers["etag"] == 'W/"2"'
    for etag in ('W/"2"', 'W/"1"'):
        r = client.put(
            "/fhir/Patient/pasien-1", json=_body("male"), headers={**H, "if-match": etag}
        )
        assert r.status_code == 412, etag
        assert r.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Patient/pasien-1").status_code == 410
    # without If-Match the update recreates it (update as create)
    again = client.put("/fhir/Patient/pasien-1", json=_body("male"), headers=H)
    assert again.status_code == 201
    assert again.headers["etag"] == 'W/"3"'
