"""A transaction killed mid-way leaves nothing of itself behind.
http://hl7.org/fhir/R4/http.html#transaction (a transaction succeeds or fails as a whole)

The server process is SIGKILLed while it is storing a large transaction bundle: after its
writes have begun (PostgreSQL: its backend holds a transaction id; SQLite: the uncommitted
pages have spilled into the write-ahead log) and before it commits. A restarted server on the
same database serves, the data stored before is intact, and no row of the killed transaction
exists.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from fhirhub.storage.engine import make_engine
from tests.api.conftest import LiveServer
from tests.api.factories import NIK, observation, patient

ENTRIES = 4000
TABLES = (
    "resources",
    "resource_versions",
    "search_token",
    "search_string",
    "search_reference",
    "search_date",
    "search_quantity",
)


# The Authorization header of each server's base URL (``LiveServer.headers``).
_AUTH: dict[str, dict[str, str]] = {}


def _started(server: LiveServer) -> LiveServer:
    _AUTH[server.base] = server.headers
    return server


def _request(method: str, url: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/fhir+json")
    base = next((b for b in _AUTH if url == b or url.startswith(b + "/")), None)
    for name, value in _AUTH.get(base or "", {}).items():
        req.add_header(name, value)
    for name, value in headers.items():
        req.add_header(name.replace("_", "-"), value)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _large_transaction(nik_prefix: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    subject = ""
    for i in range(ENTRIES):
        if i % 10 == 0:
            subject = f"urn:uuid:{uuid.uuid4()}"
            resource = patient(nik=f"{nik_prefix}{i:06}")
            entries.append(
                {
                    "fullUrl": subject,
                    "resource": resource,
                    "request": {"method": "POST", "url": "Patient"},
                }
            )
        else:
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                    "resource": observation(subject, value=i),
                    "request": {"method": "POST", "url": "Observation"},
                }
            )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _first(bundle: dict[str, Any], entries: int) -> dict[str, Any]:
    return {**bundle, "entry": bundle["entry"][:entries]}


def _counts(conn: Connection) -> dict[str, int]:
    return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def _writes_begun(db_url: str, conn: Connection) -> bool:
    """Has the server's open transaction started writing (and not yet committed)?"""
    if db_url.startswith("sqlite"):
        wal = Path(db_url.removeprefix("sqlite:///") + "-wal")
        return wal.exists() and wal.stat().st_size > 0
    return bool(
        conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
            )
        ).scalar_one()
    )


def test_killed_transaction_leaves_nothing_behind(
    live_server_factory: Callable[..., LiveServer], db_url: str
) -> None:
    server = _started(live_server_factory())
    # Data stored before the crash: a Patient in two versions, an Observation, a small bundle.
    status, pat = _request("POST", f"{server.base}/Patient", patient(nik="7472010101800001"))
    assert status == 201
    status, pat_v2 = _request(
        "PUT", f"{server.base}/Patient/{pat['id']}", {**pat, "gender": "male"}
    )
    assert status == 200
    status, obs = _request(
        "POST", f"{server.base}/Observation", observation(f"Patient/{pat['id']}")
    )
    assert status == 201
    status, small = _request("POST", server.base, _first(_large_transaction("7472030303"), 20))
    assert status == 200

    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            before = _counts(conn)
        if db_url.startswith("sqlite"):  # an empty WAL, so that any growth is the bundle's
            with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as raw:
                mode = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                assert mode[0] == 0  # not busy: the WAL is now empty

        # The large transaction, killed once its writes have begun.
        outcome: list[Any] = []

        def send() -> None:
            try:
                outcome.append(
                    _request(
                        "POST",
                        server.base,
                        _large_transaction("7472099999"),
                        Prefer="return=minimal",
                    )
                )
            except Exception as exc:  # the connection dies with the server
                outcome.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 120
        with engine.connect() as conn:
            while not _writes_begun(db_url, conn):
                assert sender.is_alive(), (
                    f"the transaction ended before it could be killed: {outcome}"
                )
                assert time.monotonic() < deadline, "the transaction never began writing"
                conn.rollback()
                time.sleep(0.02)
        server.kill()
        sender.join(timeout=60)
        assert outcome and isinstance(outcome[0], Exception), (
            f"the transaction completed before the kill: {outcome[:1]}"
        )

        # Nothing of it is left; what was stored before is intact.
        with engine.connect() as conn:
            assert _counts(conn) == before
            if db_url.startswith("sqlite"):
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
    finally:
        engine.dispose()

    restarted = _started(live_server_factory())
    status, read_back = _request("GET", f"{restarted.base}/Patient/{pat['id']}")
    assert (status, read_back) == (200, pat_v2)
    status, history = _request("GET", f"{restarted.base}/Patient/{pat['id']}/_history")
    assert status == 200
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert _request("GET", f"{restarted.base}/Observation/{obs['id']}") == (200, obs)
    for entry in small["entry"]:
        location = entry["response"]["location"].rsplit("/_history", 1)[0]
        assert _request("GET", f"{restarted.base}/{location}")[0] == 200
    status, found = _request("GET", f"{restarted.base}/Patient?identifier={NIK}|7472099999000000")
    assert status == 200 and not found.get("entry")

    # ...and it takes new writes, the same kind of transaction included.
    status, _ = _request("POST", f"{restarted.base}/Patient", patient(nik="7472010101800002"))
    assert status == 201
    bundle = _first(_large_transaction("7472040404"), 200)
    status, response = _request("POST", restarted.base, bundle, Prefer="return=minimal")
    assert status == 200 and len(response["entry"]) == 200
