"""The audit trail (issue 13, docs/auth.md "Audit"): an AuditEvent for every interaction, a
write's in the write's transaction, reads buffered; only ``admin`` reads them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from audit_refusal import drop_refusal, refuse_audit_rows
from auth_app import FHIR_JSON, FORM, AuthClient
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from fhirhub.api.app import create_app
from fhirhub.config import Settings
from fhirhub.services import audit

NIK = "7472014501900042"
PHONE = "081234567890"
FAMILY = "Sitorusbaubau"
PATCH_JSON = {"content-type": "application/json-patch+json"}


# --- helpers -----------------------------------------------------------------------------


def stored_events(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT content FROM resources WHERE res_type = 'AuditEvent' ORDER BY pk")
        ).all()
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


def subtype(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


def refs(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", []) if "reference" in e["what"]]


def patients(event: dict[str, Any]) -> list[str]:
    return [
        e["what"]["reference"]
        for e in event.get("entity", [])
        if e["role"]["code"] == "1" and "reference" in e["what"]
    ]


def patient_body(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.kemkes.go.id/id/nik", "value": NIK}],
        "name": [{"family": FAMILY, "given": ["Wa Ode"]}],
        "telecom": [{"system": "phone", "value": PHONE}],
        **extra,
    }


def observation(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {"value": 12.5, "unit": "kg"},
    }


@pytest.fixture
def app(db_url: str) -> Iterator[FastAPI]:
    """Auth off (the loopback demo); buffered events wait until a test flushes them."""
    application = create_app(
        Settings(database_url=db_url, audit_flush_interval=60), run_migrations=False
    )
    yield application
    application.state.audit_buffer.stop()
    application.state.database.engine.dispose()


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def flush(app: FastAPI) -> None:
    app.state.audit_buffer.flush()


# --- writes: in the write's transaction ---------------------------------------------------


def test_each_write_is_audited_in_its_own_transaction(app: FastAPI, http: TestClient) -> None:
    engine = app.state.database.engine
    pid = http.post("/fhir/Patient", json=patient_body(), headers=FHIR_JSON).json()["id"]
    obs = http.post("/fhir/Observation", json=observation(pid), headers=FHIR_JSON).json()
    oid = obs["id"]
    changed = {**obs, "status": "amended"}
    assert http.put(f"/fhir/Observation/{oid}", json=changed, headers=FHIR_JSON).status_code == 200
    patch = [{"op": "replace", "path": "/status", "value": "corrected"}]
    assert http.patch(f"/fhir/Observation/{oid}", json=patch, headers=PATCH_JSON).status_code == 200
    assert http.delete(f"/fhir/Observation/{oid}").status_code == 204
    # none of these waited in the buffer: each is stored with its write
    assert app.state.audit_buffer.waiting == 0
    events = stored_events(engine)
    assert [subtype(e) for e in events] == ["create", "create", "update", "patch", "delete"]
    assert [e["action"] for e in events] == ["C", "C", "U", "U", "D"]
    assert all(e["outcome"] == "0" for e in events)
    assert all(e["type"]["code"] == "rest" for e in events)
    assert refs(events[0])[0] == f"Patient/{pid}/_history/1"
    assert patients(events[0]) == [f"Patient/{pid}"]
    assert [refs(e)[0] for e in events[1:]] == [
        f"Observation/{oid}/_history/{v}" for v in (1, 2, 3, 4)
    ]
    # the Patient whose record it is, from subject (for the delete: from the last version)
    assert all(patients(e) == [f"Patient/{pid}"] for e in events[1:])
    agent = events[0]["agent"][0]
    assert agent["requestor"] is True
    assert agent["who"]["identifier"]["value"] == audit.ANONYMOUS
    assert agent["network"]["address"] == "testclient"
    assert events[0]["source"]["observer"]["display"].startswith("fhirhub")


def test_a_transaction_is_one_event_with_an_entity_per_entry(
    app: FastAPI, http: TestClient
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p1",
                "resource": patient_body(),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": observation("x") | {"subject": {"reference": "urn:uuid:p1"}},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    response = http.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200
    (event,) = stored_events(app.state.database.engine)
    assert subtype(event) == "transaction" and event["action"] == "E"
    locations = [e["response"]["location"] for e in response.json()["entry"]]
    assert refs(event)[:1] + refs(event)[2:3] == locations
    batch = {**bundle, "type": "batch", "entry": [bundle["entry"][0]]}
    assert http.post("/fhir", json=batch, headers=FHIR_JSON).status_code == 200
    assert subtype(stored_events(app.state.database.engine)[-1]) == "batch"


def test_a_write_whose_audit_cannot_be_stored_is_not_stored(
    app: FastAPI, http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: audit.Trail, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("the audit store is broken")

    monkeypatch.setattr(audit.Trail, "event", broken)
    response = http.post("/fhir/Patient", json=patient_body(), headers=FHIR_JSON)
    assert response.status_code == 500
    with app.state.database.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM resources")).scalar_one()
    assert stored == 0  # neither the Patient nor the patient index's Person


def test_a_write_whose_audit_row_the_database_refuses_is_rolled_back(
    app: FastAPI, http: TestClient
) -> None:
    engine = app.state.database.engine
    refuse_audit_rows(engine)
    try:
        response = http.post("/fhir/Patient", json=patient_body(), headers=FHIR_JSON)
        assert response.status_code >= 409  # the database's error, whatever its class
        assert "refused" not in response.text  # no internal detail
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {"resourceType": "Organization", "name": "PKM"},
                    "request": {"method": "POST", "url": "Organization"},
                }
            ],
        }
        assert http.post("/fhir", json=bundle, headers=FHIR_JSON).status_code >= 409
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM resources")).scalar_one() == 0
    finally:
        drop_refusal(engine)


def test_an_operation_that_writes_names_what_the_server_wrote(
    app: FastAPI, http: TestClient
) -> None:
    a = http.post("/fhir/Patient", json=patient_body(), headers=FHIR_JSON).json()["id"]
    other = patient_body(identifier=[{"system": "urn:x", "value": "2"}])
    b = http.post("/fhir/Patient", json=other, headers=FHIR_JSON).json()["id"]
    link = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "source", "valueReference": {"reference": f"Patient/{b}"}},
            {"name": "target", "valueReference": {"reference": f"Patient/{a}"}},
        ],
    }
    response = http.post("/fhir/Patient/$mpi-link", json=link, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    event = stored_events(app.state.database.engine)[-1]
    assert subtype(event) == "operation" and event["outcome"] == "0"
    assert any(r.startswith("Person/") for r in refs(event))  # the Person it changed


def test_clients_may_not_write_audit_events(app: FastAPI, http: TestClient) -> None:
    event = audit.event("create", recorded_us=1_700_000_000_000_000) | {"id": "a1"}
    assert http.post("/fhir/AuditEvent", json=event, headers=FHIR_JSON).status_code == 405
    assert http.put("/fhir/AuditEvent/a1", json=event, headers=FHIR_JSON).status_code == 405
    assert http.delete("/fhir/AuditEvent/a1").status_code == 405
    ops = [{"op": "replace", "path": "/outcome", "value": "0"}]
    assert http.patch("/fhir/AuditEvent/a1", json=ops, headers=PATCH_JSON).status_code == 405
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": event, "request": {"method": "PUT", "url": "AuditEvent/a1"}}],
    }
    assert http.post("/fhir", json=bundle, headers=FHIR_JSON).status_code == 405
    flush(app)
    events = stored_events(app.state.database.engine)
    # each refusal is itself audited, as a failure; none of them stored the client's event
    assert {e["outcome"] for e in events} == {"4"}
    assert all(e["id"] != "a1" for e in events)


# --- reads: buffered ------------------------------------------------------------------------


def test_reads_and_searches_are_audited_after_the_flush(app: FastAPI, http: TestClient) -> None:
    engine = app.state.database.engine
    pid = http.post("/fhir/Patient", json=patient_body(), headers=FHIR_JSON).json()["id"]
    oid = http.post("/fhir/Observation", json=observation(pid), headers=FHIR_JSON).json()["id"]
    writes = len(stored_events(engine))
    requests = {
        f"/fhir/Observation/{oid}": "read",
        f"/fhir/Observation/{oid}/_history/1": "vread",
        f"/fhir/Observation/{oid}/_history": "history-instance",
        "/fhir/Observation/_history": "history-type",
        "/fhir/_history": "history-system",
        f"/fhir/Observation?subject=Patient/{pid}&code=29463-7": "search-type",
        f"/fhir?_type=Patient&_id={pid}": "search-system",
        f"/fhir/Patient/{pid}/Observation": "search",
        f"/fhir/Patient/{pid}/$everything": "operation",
        "/fhir/Observation/no-such-id": "read",
    }
    for url in requests:
        assert http.get(url).status_code in (200, 404), url
    assert len(stored_events(engine)) == writes  # waiting in the buffer, off the request path
    assert app.state.audit_buffer.waiting == len(requests)
    flush(app)
    events = stored_events(engine)[writes:]
    assert [subtype(e) for e in events] == list(requests.values())
    by_kind = {subtype(e): e for e in events[:-1]}
    assert by_kind["read"]["action"] == "R" and by_kind["read"]["outcome"] == "0"
    assert by_kind["search-type"]["action"] == "E"
    # which patient: the read resource's subject, the search's subject, the compartment
    for kind in ("read", "vread", "search-type", "search", "operation"):
        assert patients(by_kind[kind]) == [f"Patient/{pid}"], kind
    assert refs(by_kind["vread"])[0] == f"Observation/{oid}/_history/1"
    assert events[-1]["outcome"] == "4" and events[-1]["outcomeDesc"] == "HTTP 404"
    # storing AuditEvents is not audited: nothing new waits
    assert app.state.audit_buffer.waiting == 0


def test_reads_by_id_of_one_client_are_grouped_in_a_batch(app: FastAPI, http: TestClient) -> None:
    engine = app.state.database.engine
    pid = http.post("/fhir/Patient", json=patient_body(), headers=FHIR_JSON).json()["id"]
    oid = http.post("/fhir/Observation", json=observation(pid), headers=FHIR_JSON).json()["id"]
    writes = len(stored_events(engine))
    ids = []
    for url in (f"/fhir/Patient/{pid}", f"/fhir/Observation/{oid}", f"/fhir/Patient/{pid}"):
        response = http.get(url)
        assert response.status_code == 200
        ids.append(response.headers["x-request-id"])
    flush(app)
    (event,) = stored_events(engine)[writes:]
    assert subtype(event) == "read" and event["outcome"] == "0"
    assert event["period"]["start"] <= event["period"]["end"] == event["recorded"]
    # every read is there: what it read, its request id and time; the Patient once
    read = [e for e in event["entity"] if "detail" in e]
    assert [e["what"]["reference"] for e in read] == [
        f"Patient/{pid}",
        f"Observation/{oid}",
        f"Patient/{pid}",
    ]
    assert [e["detail"][0]["valueString"] for e in read] == ids
    assert patients(event).count(f"Patient/{pid}") >= 1
    found = http.get(f"/fhir/AuditEvent?patient={pid}&subtype=read").json()
    assert len(found["entry"]) == 1


def test_a_batch_larger_than_a_slice_keeps_every_read(app: FastAPI, http: TestClient) -> None:
    """A batch is turned into events a slice at a time (letting the server's requests have the
    GIL between slices): every read is still there, in events of at most a slice of reads."""
    from fhirhub.services.audit_buffer import SLICE

    engine = app.state.database.engine
    pid = http.post("/fhir/Patient", json=patient_body(), headers=FHIR_JSON).json()["id"]
    writes = len(stored_events(engine))
    reads = SLICE * 2 + 7
    for _ in range(reads):
        assert http.get(f"/fhir/Patient/{pid}").status_code == 200
    flush(app)
    events = stored_events(engine)[writes:]
    assert len(events) == 3
    per_event = [len([e for e in event["entity"] if "detail" in e]) for event in events]
    assert sorted(per_event) == [7, SLICE, SLICE]
    found = http.get(f"/fhir/AuditEvent?patient={pid}&subtype=read&_count=10").json()
    assert len(found["entry"]) == 3


def test_no_event_carries_a_name_a_nik_a_phone_or_a_body(app: FastAPI, http: TestClient) -> None:
    pid = http.post("/fhir/Patient", json=patient_body(), headers=FHIR_JSON).json()["id"]
    http.get(f"/fhir/Patient/{pid}")
    http.get(f"/fhir/Patient?identifier=https://fhir.kemkes.go.id/id/nik|{NIK}")
    http.get(f"/fhir/Patient?family={FAMILY}&telecom={PHONE}")
    http.post("/fhir/Patient/_search", content=f"name={FAMILY}", headers=FORM)
    http.put(f"/fhir/Patient/{pid}", json=patient_body(id=pid, gender="female"), headers=FHIR_JSON)
    http.put("/fhir/Patient?identifier=" + NIK, json=patient_body(), headers=FHIR_JSON)
    flush(app)
    events = stored_events(app.state.database.engine)
    assert len(events) == 7
    text_of_all = json.dumps(events)
    for secret in (NIK, PHONE, FAMILY, "Wa Ode", "female", "29463-7"):
        assert secret not in text_of_all
    assert all(patients(e) in ([f"Patient/{pid}"], []) for e in events)


def test_audit_off_writes_none(db_url: str) -> None:
    settings = Settings(database_url=db_url, audit="off")
    application = create_app(settings, run_migrations=False)
    with TestClient(application) as client:
        pid = client.post("/fhir/Patient", json=patient_body(), headers=FHIR_JSON).json()["id"]
        client.get(f"/fhir/Patient/{pid}")
        assert application.state.audit_buffer is None
    assert stored_events(application.state.database.engine) == []
    application.state.database.engine.dispose()


def test_the_buffer_stores_by_itself_after_its_interval(db_url: str) -> None:
    application = create_app(
        Settings(database_url=db_url, audit_flush_interval=0.2), run_migrations=False
    )
    with TestClient(application) as client:
        client.get("/fhir/Patient/nobody")
        engine = application.state.database.engine
        for _ in range(100):
            if stored_events(engine):
                break
            time.sleep(0.05)
        assert [subtype(e) for e in stored_events(engine)] == ["read"]
    application.state.database.engine.dispose()


def test_a_graceful_stop_stores_what_waits(db_url: str) -> None:
    application = create_app(
        Settings(database_url=db_url, audit_flush_interval=60), run_migrations=False
    )
    with TestClient(application) as client:
        client.get("/fhir/Patient/nobody")
        assert stored_events(application.state.database.engine) == []
    # the lifespan's end stopped the buffer
    assert len(stored_events(application.state.database.engine)) == 1
    application.state.database.engine.dispose()


# --- who, with auth on ----------------------------------------------------------------------


@pytest.fixture
def audited(auth_app: AuthClient) -> AuthClient:
    return auth_app


def _app_of(client: AuthClient) -> Any:
    return client.http.app


def test_who_is_the_token_s_client(audited: AuthClient) -> None:
    http = audited.http
    app = _app_of(audited)
    secret = audited.register("pkm-wolio", "facility", organization="Organization/org-pkm01")
    assert secret is not None
    facility = audited.token("pkm-wolio", secret)
    created = http.post(
        "/fhir/Patient", json=patient_body(), headers=audited.headers(facility, **FHIR_JSON)
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    assert http.get(f"/fhir/Patient/{pid}", headers=audited.headers(facility)).status_code == 200
    assert http.get(f"/fhir/Patient/{pid}").status_code == 401  # no token
    bad = http.post(
        "/auth/token",
        content="grant_type=client_credentials&client_id=pkm-wolio&client_secret=wrong",
        headers=FORM,
    )
    assert bad.status_code == 401
    admin = audited.as_role("admin")
    app.state.audit_buffer.flush()
    found = http.get(
        f"/fhir/AuditEvent?patient={pid}&agent=Organization/org-pkm01&_sort=date",
        headers=audited.headers(admin),
    )
    assert found.status_code == 200, found.text
    events = [e["resource"] for e in found.json()["entry"]]
    assert [subtype(e) for e in events] == ["create", "read"]
    agent = events[0]["agent"][0]
    assert agent["who"] == {
        "reference": "Organization/org-pkm01",
        "identifier": {"system": audit.CLIENT_SYSTEM, "value": "pkm-wolio"},
        "display": "pkm-wolio",
    }
    assert agent["role"][0]["coding"][0]["code"] == "facility"
    # the refusals: a request without a token, a token request with a wrong secret
    refused = http.get("/fhir/AuditEvent?outcome=4", headers=audited.headers(admin)).json()
    kinds = {
        (subtype(e["resource"]), e["resource"]["agent"][0]["who"]["display"])
        for e in refused["entry"]
    }
    assert ("read", audit.ANONYMOUS) in kinds
    assert ("110122", "pkm-wolio") in kinds  # a token refused (DICOM Login)
    tokens = http.get(
        "/fhir/AuditEvent?type=http://dicom.nema.org/resources/ontology/DCM|110114&outcome=0",
        headers=audited.headers(admin),
    ).json()
    names = {e["resource"]["agent"][0]["who"]["display"] for e in tokens["entry"]}
    assert names >= {"pkm-wolio", "admin-1"}
    by_client = http.get(
        f"/fhir/AuditEvent?agent:identifier={audit.CLIENT_SYSTEM}|pkm-wolio&subtype=read"
        f"&entity=Patient/{pid}&date=ge2020-01-01",
        headers=audited.headers(admin),
    ).json()
    assert len(by_client["entry"]) == 1


@pytest.mark.parametrize("role", ["facility", "analyst", "steward", "sync"])
@pytest.mark.parametrize(
    "method,url,body",
    [
        ("GET", "/fhir/AuditEvent", None),
        ("GET", "/fhir/AuditEvent/a1", None),
        ("GET", "/fhir/AuditEvent/a1/_history", None),
        ("GET", "/fhir?_type=AuditEvent", None),
        ("GET", "/fhir/Patient?_revinclude=AuditEvent:patient", None),
        ("GET", "/fhir/Observation?_revinclude=AuditEvent:entity", None),
        ("GET", "/fhir/Patient?_has:AuditEvent:patient:outcome=0", None),
        ("GET", "/fhir/Provenance?target:AuditEvent.outcome=0", None),
        ("GET", "/fhir/Provenance?_include=Provenance:target", None),
        ("GET", "/fhir/Patient/p1/AuditEvent", None),
        ("POST", "/fhir/AuditEvent/_search", ""),
        (
            "POST",
            "/fhir",
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "GET", "url": "AuditEvent?outcome=0"}}],
            },
        ),
        (
            "POST",
            "/fhir/ViewDefinition/$viewdefinition-run",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "viewResource",
                        "resource": {
                            "resourceType": "ViewDefinition",
                            "resource": "AuditEvent",
                            "status": "active",
                            "select": [{"column": [{"path": "id", "name": "id"}]}],
                        },
                    }
                ],
            },
        ),
    ],
)
def test_only_admin_reaches_the_trail(
    audited: AuthClient, role: str, method: str, url: str, body: Any
) -> None:
    token = audited.as_role(role)
    if isinstance(body, str):
        headers = audited.headers(token, **FORM)
        response = audited.http.request(method, url, content=body, headers=headers)
    else:
        headers = audited.headers(token, **FHIR_JSON)
        response = audited.http.request(method, url, json=body, headers=headers)
    assert response.status_code == 403, (role, url, response.text)
    if url.endswith("$viewdefinition-run"):
        admin = audited.as_role("admin")
        headers = audited.headers(admin, **FHIR_JSON)
        assert audited.http.post(url, json=body, headers=headers).status_code == 200


# --- the events themselves ------------------------------------------------------------------


def _rows(rows: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    return sorted((t, repr(sorted(r.items()))) for t in rows for r in rows[t])


@pytest.mark.parametrize("kind", sorted(audit.KINDS))
@pytest.mark.parametrize(
    "agent",
    [
        audit.ANONYMOUS_AGENT,
        audit.Agent("pkm-wolio", "facility", "Organization/org-pkm01"),
        audit.Agent(source="rsud", organization="Organization/rsud"),
    ],
)
def test_cheap_index_rows_are_the_generic_ones(kind: str, agent: audit.Agent) -> None:
    from fhirhub.search.indexing import index_rows

    entities = [
        audit.Entity("Observation/o1/_history/2", "Observation"),
        audit.patient_entity("p1"),
        audit.Entity(res_type="Encounter", role="24"),
        audit.Entity(identifier=(audit.INBOX_SYSTEM, "7"), role="20"),
        audit.Entity(name="/admin/inbox/7"),
    ]
    for status in (200, 404, 503):
        event = audit.event(
            kind,
            recorded_us=1_765_000_000_123_456,
            outcome=audit.outcome_of(status),
            agent=agent,
            address="10.1.2.3",
            request_id="r1",
            entities=entities,
            status=status,
        )
        assert _rows(audit.index_of(event)) == _rows(index_rows(event))


_IDS = st.one_of(
    st.uuids().map(str),
    st.from_regex(r"[A-Za-z0-9\-.]{1,70}", fullmatch=True),
    st.text(max_size=12),
)


@given(
    reads=st.lists(
        st.tuples(
            st.sampled_from(["Patient", "Observation", "Encounter", "Foo", "patient"]),
            _IDS,
            st.sampled_from(["", "/_history/2"]),
            st.sampled_from(
                [None, '{"resourceType":"Observation","subject":{"reference":"Patient/p9"}}']
            ),
        ),
        min_size=1,
        max_size=40,
    ),
    status=st.sampled_from([200, 404]),
)
@settings(max_examples=60, deadline=None)
def test_cheap_index_rows_of_grouped_reads_are_the_generic_ones(
    reads: list[tuple[str, str, str, str | None]], status: int
) -> None:
    """A batch of reads (grouped when they succeeded; any path a client may send) is indexed
    as the generic index_rows would index its events."""
    from fhirhub.search.indexing import index_rows
    from fhirhub.services.audit_buffer import Pending, events_of

    items = [
        Pending(
            1_765_000_000_000_000 + i,
            "GET",
            f"/fhir/{res_type}/{res_id}{history}",
            "",
            status,
            audit.ANONYMOUS_AGENT,
            "10.1.2.3",
            f"r{i}",
            content,
        )
        for i, (res_type, res_id, history, content) in enumerate(reads)
    ]
    for event in events_of(items):
        assert _rows(audit.index_of(event)) == _rows(index_rows(event))


def test_the_interaction_of_a_request() -> None:
    kind = audit.kind_of_request
    assert kind("GET", "/fhir/Patient/p1")[0] == "read"
    assert kind("HEAD", "/fhir/Patient/p1/_history/3")[0] == "vread"
    assert kind("GET", "/fhir/Patient")[0] == "search-type"
    assert kind("POST", "/fhir/Patient/_search")[0] == "search-type"
    assert kind("GET", "/fhir")[0] == "search-system"
    assert kind("POST", "/fhir")[0] == "transaction"
    assert kind("DELETE", "/fhir/Patient")[0] == "delete"
    assert kind("PATCH", "/fhir/Patient/p1")[0] == "patch"
    assert kind("POST", "/fhir/Patient/$match")[0] == "operation"
    assert kind("GET", "/fhir/Patient/p1/$everything")[0] == "operation"
    assert kind("GET", "/fhir/Patient/p1/*")[0] == "search"
    assert kind("POST", "/ingest/puskesmas")[0] == "ingest"
    assert kind("POST", "/auth/token")[0] == "token"
    assert kind("GET", "/admin/inbox/3")[0] == "read"
    assert [o for o in map(audit.outcome_of, (200, 304, 401, 422, 500, 503))] == [
        "0",
        "0",
        "4",
        "4",
        "8",
        "12",
    ]
    assert audit.patients_in_query("Observation", "subject=Patient/p1&code=x") == ["p1"]
    assert audit.patients_in_query("Patient", "_id=p1,p2&name=Budi") == ["p1", "p2"]
    assert audit.patients_in_query("Observation", "subject=Group/g1&patient=p3") == ["p3"]
