"""Patient data in logs (issue 10, item 9): one line per failure with a request id, never the
exception's message; tracebacks rate-limited; nothing re-raised to the server.

The whole suite's log records are also checked for NIKs and names (tests/conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from fhirhub.api import errors
from fhirhub.api.app import create_app
from fhirhub.config import Settings
from fhirhub.services import read
from tests.api.conftest import FHIR_JSON
from tests.api.factories import patient

NIK = "7472014501900001"
NAME = "Wa Ode Sitti"
# What PostgreSQL's messages look like: they quote the value that failed.
QUOTING = f'invalid input: {{"name": [{{"family": "{NAME}"}}], "identifier": "{NIK}"}}'


@pytest.fixture
def strict_client(db_url: str) -> Iterator[TestClient]:
    """raise_server_exceptions=True: an exception that reached the server would raise here."""
    app = create_app(Settings(database_url=db_url), run_migrations=False)
    with TestClient(app) as c:
        yield c
    app.state.database.engine.dispose()


@pytest.fixture(autouse=True)
def fresh_rate_limit() -> None:
    errors._last_traceback.clear()


def _fail_with(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    def broken(*_: object, **__: object) -> None:
        raise exc

    monkeypatch.setattr(read, "read", broken)


def _fhirhub_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        r.getMessage() + (str(r.exc_info) if r.exc_info else "")
        for r in caplog.records
        if r.name.startswith(("fhirhub", "uvicorn"))
    )


def test_an_unexpected_error_is_one_line_with_a_request_id_and_no_message(
    strict_client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pid = strict_client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    _fail_with(monkeypatch, RuntimeError(QUOTING))
    with caplog.at_level(logging.INFO):
        r = strict_client.get(f"/fhir/Patient/{pid}")  # would raise if re-raised to uvicorn
    assert r.status_code == 500
    request_id = r.headers["x-request-id"]
    assert request_id in r.json()["issue"][0]["diagnostics"]
    text = _fhirhub_text(caplog)
    assert NIK not in text and NAME not in text and "invalid input" not in text
    lines = [rec.getMessage() for rec in caplog.records if "request failed" in rec.getMessage()]
    assert len(lines) == 1
    assert f"request_id={request_id}" in lines[0]
    assert "status=500" in lines[0] and "route=/fhir/{res_type}/{res_id}" in lines[0]
    assert "error=RuntimeError" in lines[0]
    assert pid not in lines[0]  # the route template, not the path


def test_tracebacks_are_rate_limited_and_hold_only_files_and_lines(
    strict_client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fail_with(monkeypatch, RuntimeError(QUOTING))
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            assert strict_client.get("/fhir/Patient/p1").status_code == 500
    messages = [r.getMessage() for r in caplog.records]
    tracebacks = [m for m in messages if m.startswith("traceback of")]
    assert len(tracebacks) == 1
    assert "fhir_routes.py:" in tracebacks[0]
    assert "raise exc" not in tracebacks[0]  # no source lines, no locals
    assert len([m for m in messages if "request failed" in m]) == 5


def test_an_outage_quoting_data_is_logged_without_it(
    strict_client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fail_with(
        monkeypatch,
        OperationalError("SELECT 1", {"nik": NIK}, psycopg.OperationalError(QUOTING)),
    )
    with caplog.at_level(logging.INFO):
        r = strict_client.get("/fhir/Patient/p1")
    assert r.status_code == 503
    assert NIK not in r.text and NAME not in r.text
    text = _fhirhub_text(caplog)
    assert NIK not in text and NAME not in text
    assert "error=OperationalError(OperationalError)" in text


def test_a_sane_client_request_id_is_kept_and_another_replaced(client: TestClient) -> None:
    r = client.get("/fhir/Patient/missing", headers={"x-request-id": "pkm01-batch.42:7"})
    assert r.headers["x-request-id"] == "pkm01-batch.42:7"
    for bad in ("x" * 65, "a b", "<script>", f"{NIK} {NAME}", NIK, f"batch-{NIK}"):
        r = client.get("/fhir/Patient/missing", headers={"x-request-id": bad})
        assert r.headers["x-request-id"] != bad
        assert len(r.headers["x-request-id"]) == 16


def test_a_request_id_made_here_never_looks_like_a_nik(monkeypatch: pytest.MonkeyPatch) -> None:
    from fhirhub.api import middleware

    made = iter(["7472010101900001", "7472010101900002", "0123456789abcdef"])
    monkeypatch.setattr(middleware.secrets, "token_hex", lambda n: next(made))
    assert middleware.new_request_id() == "0123456789abcdef"


def test_the_access_log_leaves_out_the_query() -> None:
    from fhirhub.api.middleware import _HideQuery

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/fhir/Patient?identifier={NIK}", "1.1", 200),
        None,
    )
    assert _HideQuery().filter(record)
    assert NIK not in record.getMessage()
    assert "/fhir/Patient?..." in record.getMessage()


def test_the_suite_wide_log_check_sees_niks_and_names() -> None:
    """The check tests/conftest.py runs over every record of the suite."""
    from tests.conftest import patient_data_in

    def record(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("fhirhub.x", logging.ERROR, __file__, 1, msg, args, None)

    assert patient_data_in(record("stored nik=%s", NIK)) is not None
    assert patient_data_in(record("patient %s", NAME)) is not None
    assert patient_data_in(record("stored message=%s resources=%d", 12, 7)) is None
    assert patient_data_in(record("request failed status=500 request_id=%s", "a1b2")) is None
