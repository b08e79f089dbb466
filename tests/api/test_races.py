"""Concurrent writes to one resource serialise. http://hl7.org/fhir/R4/http.html#concurrency

Requests that change the same resource at the same moment, each client on its own HTTP
connection to a real server with two worker processes, must each get the answer it would have
got had they run one after another, in some order; and the stored history must be that order:
every changing request owns exactly one new version, holding what it wrote (a PATCH: its patch
applied to the version before), a PUT after a DELETE is a create (201), and the current state is
the last version. 409 or 412 only where a client asked for a version with If-Match.

Each scenario runs ``FHIRHUB_RACE_TRIALS`` times (default 2, to keep the suite fast):

    FHIRHUB_RACE_TRIALS=100 .venv/bin/python -m pytest -p no:xdist -k postgresql \
        tests/api/test_races.py
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from fhirhub.api.deps import ATTEMPTS, Database
from fhirhub.errors import FhirError
from fhirhub.services.writes import Writer
from fhirhub.storage.engine import make_engine
from tests.api.conftest import LiveServer
from tests.api.factories import observation, patient
from tests.conftest import _empty_postgres, postgres_url

TRIALS = int(os.environ.get("FHIRHUB_RACE_TRIALS", "2"))
CLIENTS = 32
FHIR = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def version(self) -> int:
        etag = self.headers.get("etag") or self.headers.get("ETag") or ""
        return int(etag.removeprefix("W/").strip('"'))


@dataclass
class Version:
    version: int
    method: str
    deleted: bool
    resource: dict[str, Any] | None


def _at_once(server: LiveServer, requests: list[tuple[str, str, Any, dict[str, str]]]) -> list:
    """Send one request per thread, each on its own connection, released together."""
    barrier = threading.Barrier(len(requests))
    results: list[Any] = [None] * len(requests)

    def client(i: int) -> None:
        method, path, body, headers = requests[i]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        try:
            conn.connect()
            data = None if body is None else json.dumps(body).encode()
            barrier.wait(timeout=30)
            conn.request(method, path, body=data, headers={**server.headers, **headers})
            resp = conn.getresponse()
            raw = resp.read()
            results[i] = Answer(
                resp.status,
                {k.lower(): v for k, v in resp.getheaders()},
                json.loads(raw) if raw else None,
            )
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


def _send(server: LiveServer, method: str, path: str, body: Any = None) -> Answer:
    (answer,) = _at_once(server, [(method, path, body, FHIR)])
    return answer


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def race_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> str:
    """One database for the module's races (each race writes resources of its own ids)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("races") / "fhirhub.sqlite3"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = postgres_url()
    _empty_postgres(url)
    return url


@pytest.fixture(scope="module")
def server(race_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server with two worker processes (starting one costs more than a race)."""
    live = LiveServer(race_db, 2, tmp_path_factory.mktemp("races-log") / "server.log").start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def store(race_db: str) -> Iterator[Engine]:
    engine = make_engine(race_db, pool_size=1)
    yield engine
    engine.dispose()


def _history(store: Engine, res_type: str, res_id: str) -> list[Version]:
    """Every stored version of a resource, oldest first, and checks the head row agrees."""
    with store.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT version, method, deleted, content FROM resource_versions "
                "WHERE res_type = :t AND res_id = :i ORDER BY version"
            ),
            {"t": res_type, "i": res_id},
        ).all()
        head = conn.execute(
            text("SELECT version, deleted FROM resources WHERE res_type = :t AND res_id = :i"),
            {"t": res_type, "i": res_id},
        ).one()
    versions = [
        Version(v, m, bool(d), json.loads(c) if c is not None else None) for v, m, d, c in rows
    ]
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    assert (head[0], bool(head[1])) == (versions[-1].version, versions[-1].deleted)
    return versions


def _family(resource: dict[str, Any] | None) -> str | None:
    return None if resource is None else resource["name"][0]["family"]


def _new_patient(server: LiveServer, family: str = "Awal") -> str:
    res_id = f"race-{uuid.uuid4().hex[:12]}"
    body = {**patient(family=family), "id": res_id}
    answer = _send(server, "PUT", f"/fhir/Patient/{res_id}", body)
    assert answer.status == 201
    return res_id


def _assert_puts_own_versions(
    history: list[Version], puts: list[tuple[str, Answer]], first: int
) -> None:
    """Each PUT owns one new version holding its body: 201 if it (re)created the resource."""
    for family, answer in puts:
        assert answer.status in (200, 201), (answer.status, answer.body)
        stored = history[answer.version - 1]
        assert stored.method == "PUT" and _family(stored.resource) == family
        before = history[answer.version - 2] if answer.version > 1 else None
        created = before is None or before.deleted
        assert answer.status == (201 if created else 200), (answer.version, answer.status)
    assert sorted(a.version for _, a in puts) == sorted(set(a.version for _, a in puts))
    assert min(a.version for _, a in puts) >= first


# --- DELETE against PUTs ----------------------------------------------------------------------


def test_a_delete_racing_puts_deletes_in_its_turn(server: LiveServer, store: Engine) -> None:
    for _ in range(TRIALS):
        res_id = _new_patient(server)
        path = f"/fhir/Patient/{res_id}"
        families = ["Satu", "Dua", "Tiga"]
        requests = [("DELETE", path, None, FHIR)] + [
            ("PUT", path, {**patient(family=f), "id": res_id}, FHIR) for f in families
        ]
        delete, *puts = _at_once(server, requests)

        history = _history(store, "Patient", res_id)
        assert len(history) == 5, [(v.version, v.method) for v in history]  # 1 + four changes
        assert delete.status == 204
        deleted = history[delete.version - 1]
        assert deleted.method == "DELETE" and deleted.deleted
        _assert_puts_own_versions(history, list(zip(families, puts, strict=True)), first=2)
        assert sorted([delete.version, *(a.version for a in puts)]) == [2, 3, 4, 5]
        read = _send(server, "GET", path)
        assert read.status == (410 if history[-1].deleted else 200)


# --- PATCH against PUTs -----------------------------------------------------------------------


def test_a_patch_racing_puts_patches_the_version_before_it(
    server: LiveServer, store: Engine
) -> None:
    operations = [{"op": "add", "path": "/active", "value": True}]
    patch_headers = {"Content-Type": "application/json-patch+json", "Prefer": "return=minimal"}
    for _ in range(TRIALS):
        res_id = _new_patient(server)
        path = f"/fhir/Patient/{res_id}"
        families = ["Satu", "Dua", "Tiga"]
        requests = [("PATCH", path, operations, patch_headers)] + [
            ("PUT", path, {**patient(family=f), "id": res_id}, FHIR) for f in families
        ]
        patched, *puts = _at_once(server, requests)

        assert patched.status == 200, patched.body
        history = _history(store, "Patient", res_id)
        assert len(history) == 5
        mine = history[patched.version - 1]
        before = history[patched.version - 2]
        assert mine.method == "PATCH"
        expected = jsonpatch.apply_patch(before.resource, operations)
        assert _without_meta(mine.resource) == _without_meta(expected)
        _assert_puts_own_versions(history, list(zip(families, puts, strict=True)), first=2)
        assert sorted([patched.version, *(a.version for a in puts)]) == [2, 3, 4, 5]


def _without_meta(resource: dict[str, Any] | None) -> dict[str, Any]:
    assert resource is not None
    return {k: v for k, v in resource.items() if k != "meta"}


# --- many PUTs --------------------------------------------------------------------------------


def test_32_puts_to_one_resource_all_succeed_one_after_another(
    server: LiveServer, store: Engine
) -> None:
    for _ in range(TRIALS):
        res_id = _new_patient(server)
        path = f"/fhir/Patient/{res_id}"
        families = [f"Klien{i}" for i in range(CLIENTS)]
        answers = _at_once(
            server, [("PUT", path, {**patient(family=f), "id": res_id}, FHIR) for f in families]
        )
        assert [a.status for a in answers] == [200] * CLIENTS, [a.body for a in answers][:3]
        history = _history(store, "Patient", res_id)
        assert len(history) == CLIENTS + 1
        _assert_puts_own_versions(history, list(zip(families, answers, strict=True)), first=2)


def test_32_puts_asking_for_the_same_version_let_one_through(
    server: LiveServer, store: Engine
) -> None:
    """With If-Match W/"1" only the first in the order finds version 1: the rest get 412."""
    for _ in range(TRIALS):
        res_id = _new_patient(server)
        path = f"/fhir/Patient/{res_id}"
        headers = {**FHIR, "If-Match": 'W/"1"'}
        families = [f"Klien{i}" for i in range(CLIENTS)]
        answers = _at_once(
            server, [("PUT", path, {**patient(family=f), "id": res_id}, headers) for f in families]
        )
        assert sorted(a.status for a in answers) == [200] + [412] * (CLIENTS - 1)
        history = _history(store, "Patient", res_id)
        assert len(history) == 2
        (winner,) = [f for f, a in zip(families, answers, strict=True) if a.status == 200]
        assert _family(history[1].resource) == winner


def test_32_puts_creating_one_new_resource_make_one_create_and_updates(
    server: LiveServer, store: Engine
) -> None:
    """Update as create: the first in the order creates (201), every other updates it."""
    for _ in range(TRIALS):
        res_id = f"race-{uuid.uuid4().hex[:12]}"
        path = f"/fhir/Patient/{res_id}"
        families = [f"Klien{i}" for i in range(CLIENTS)]
        answers = _at_once(
            server, [("PUT", path, {**patient(family=f), "id": res_id}, FHIR) for f in families]
        )
        assert sorted(a.status for a in answers) == [200] * (CLIENTS - 1) + [201], [
            (a.status, a.body) for a in answers if a.status >= 300
        ][:3]
        history = _history(store, "Patient", res_id)
        assert len(history) == CLIENTS
        _assert_puts_own_versions(history, list(zip(families, answers, strict=True)), first=1)


# --- transactions on shared resources -------------------------------------------------------


def _transaction(entries: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """PUT each (url, body); then POST a Patient and an Observation referring to it by its
    urn:uuid (a unit of work that is run again must resolve it again, to the new Patient)."""
    mother = f"urn:uuid:{uuid.uuid4()}"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            *(
                {"resource": body, "request": {"method": "PUT", "url": url}}
                for url, body in entries
            ),
            {
                "fullUrl": mother,
                "resource": patient(family="Ibu"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": observation(mother),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }


def _check_reference_rewritten(store: Engine, entries: list[dict[str, Any]]) -> None:
    """The Observation refers to the Patient its Bundle created, as stored."""
    mother, child = (e["response"]["location"].split("/") for e in entries)
    with store.connect() as conn:
        content = conn.execute(
            text("SELECT content FROM resource_versions WHERE res_id = :i AND version = 1"),
            {"i": child[1]},
        ).scalar_one()
        assert json.loads(content)["subject"]["reference"] == f"Patient/{mother[1]}"
        assert conn.execute(
            text("SELECT count(*) FROM resources WHERE res_type = 'Patient' AND res_id = :i"),
            {"i": mother[1]},
        ).scalar_one()


def _serial_transactions(
    server: LiveServer, store: Engine, ids: list[str], *, existing: bool
) -> None:
    """32 transactions each PUT every resource of ``ids`` (in a different order each): all
    succeed, and the order of their versions is the same on every resource."""
    bundles = []
    for i in range(CLIENTS):
        order = ids[i % len(ids) :] + ids[: i % len(ids)]  # each starts somewhere else
        bundles.append(
            _transaction(
                [(f"Patient/{r}", {**patient(family=f"Klien{i}"), "id": r}) for r in order]
            )
        )
    answers = _at_once(server, [("POST", "/fhir", b, FHIR) for b in bundles])
    assert [a.status for a in answers] == [200] * CLIENTS, [a.body for a in answers][:3]
    histories = {r: _history(store, "Patient", r) for r in ids}
    first = 2 if existing else 1
    for r, history in histories.items():
        assert len(history) == CLIENTS + first - 1, r
    for i, answer in enumerate(answers):
        order = ids[i % len(ids) :] + ids[: i % len(ids)]
        versions = set()
        *puts, mother, child = answer.body["entry"]
        _check_reference_rewritten(store, [mother, child])
        for r, entry in zip(order, puts, strict=True):
            version = int(entry["response"]["etag"].removeprefix("W/").strip('"'))
            stored = histories[r][version - 1]
            assert _family(stored.resource) == f"Klien{i}"
            created = version == 1
            assert entry["response"]["status"] == ("201 Created" if created else "200 OK")
            versions.add(version)
        # one serial order: the k-th transaction wrote the k-th new version of each resource
        assert len(versions) == 1, (i, versions)


def test_32_transactions_on_shared_resources_serialise(server: LiveServer, store: Engine) -> None:
    for _ in range(TRIALS):
        ids = [_new_patient(server) for _ in range(3)]
        _serial_transactions(server, store, ids, existing=True)


def test_32_transactions_creating_shared_resources_serialise(
    server: LiveServer, store: Engine
) -> None:
    for _ in range(TRIALS):
        ids = [f"race-{uuid.uuid4().hex[:12]}" for _ in range(3)]
        _serial_transactions(server, store, ids, existing=False)


# --- the unit of work ------------------------------------------------------------------------


def test_a_unit_of_work_that_lost_a_race_runs_again_from_the_start(db_url: str) -> None:
    """What PostgreSQL reports when a concurrent writer won (a unique violation, a deadlock)
    rolls the work back and runs it again; anything else is not retried."""
    engine = make_engine(db_url, pool_size=1)
    db = Database(engine)
    calls: list[int] = []

    def lose_once(writer: Writer) -> int:
        calls.append(len(calls))
        writer.update("Patient", f"p{len(calls)}", {**patient(), "id": f"p{len(calls)}"})
        writer.flush()
        if len(calls) == 1:
            raise IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key"))
        return len(calls)

    try:
        assert db.transact(lose_once) == 2
        with engine.connect() as conn:
            ids = conn.execute(
                text("SELECT res_id FROM resources WHERE res_type = 'Patient' ORDER BY res_id")
            ).scalars()
            assert list(ids) == ["p2"]  # the first attempt's write was rolled back
            persons = conn.execute(text("SELECT count(*) FROM mpi_records")).scalar_one()
            assert persons == 1  # and so was its patient index record

        def always_deadlocked(writer: Writer) -> None:
            calls.append(0)
            raise OperationalError("SELECT", {}, psycopg.errors.DeadlockDetected("deadlock"))

        calls.clear()
        with pytest.raises(FhirError) as lost:
            db.transact(always_deadlocked)
        assert lost.value.status == 409 and len(calls) == ATTEMPTS

        def broken(writer: Writer) -> None:
            calls.append(0)
            raise OperationalError("SELECT", {}, psycopg.errors.UndefinedTable("no table"))

        calls.clear()
        with pytest.raises(OperationalError):
            db.transact(broken)
        assert len(calls) == 1
    finally:
        engine.dispose()
