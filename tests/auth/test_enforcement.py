"""Enforcement on every route with FHIRHUB_AUTH=on: 401 without a good token, 403 when the
token's scopes or role do not allow what the request reaches (including through _include,
_revinclude, chains, _has, $everything and a transaction's entries)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from auth_app import FHIR_JSON, SERVER_KEY, AuthClient
from auth_keys import ec_key, signing_keys
from fastapi import Request
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from joserfc import jwt

from fhirhub.api import authorize
from fhirhub.api.app import create_app
from fhirhub.auth.roles import Role
from fhirhub.auth.tokens import TokenIssuer
from fhirhub.config import Settings

ISS, AUD = "http://testserver/auth", "http://testserver/fhir"


def _seed(app: AuthClient) -> None:
    admin = app.headers(app.as_role(Role.admin), **FHIR_JSON)
    for resource in (
        {"resourceType": "Organization", "id": "org1", "name": "Puskesmas Wolio"},
        {
            "resourceType": "Patient",
            "id": "p1",
            "managingOrganization": {"reference": "Organization/facility-1"},
        },
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"text": "bp"},
            "subject": {"reference": "Patient/p1"},
        },
        {"resourceType": "Measure", "id": "m1", "status": "active"},
        # another facility's patient and its record (which names no Organization)
        {
            "resourceType": "Patient",
            "id": "p2",
            "managingOrganization": {"reference": "Organization/facility-2"},
        },
        {
            "resourceType": "Observation",
            "id": "o2",
            "status": "final",
            "code": {"text": "bp"},
            "subject": {"reference": "Patient/p2"},
        },
    ):
        answer = app.http.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=admin
        )
        assert answer.status_code in (200, 201), answer.text


def _outcome(answer: Any, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code


# --- every route has a rule ---------------------------------------------------------------


def test_every_route_has_a_rule(auth_settings: Settings) -> None:
    app = create_app(auth_settings, run_migrations=False)
    missing = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                key = ("GET" if method == "HEAD" else method, route.path)
                if key not in authorize.RULES:
                    missing.append(key)
    assert missing == []
    app.state.database.engine.dispose()


def test_a_route_without_a_rule_is_refused(auth_app: AuthClient) -> None:
    app = auth_app.http.app

    @app.get("/not-in-the-table")  # type: ignore[attr-defined,misc]
    async def whoami(request: Request) -> dict[str, Any]:
        return {"client": authorize.describe(request.state.client)}

    token = auth_app.as_role(Role.admin)
    _outcome(
        auth_app.http.get("/not-in-the-table", headers=auth_app.headers(token)), 403, "forbidden"
    )
    authorize.RULES[("GET", "/not-in-the-table")] = authorize._roles(Role.admin, Role.facility)
    try:
        got = auth_app.http.get("/not-in-the-table", headers=auth_app.headers(token)).json()
        assert got == {"client": {"id": "admin-1", "role": "admin", "organization": None}}
        fac = auth_app.as_role(Role.facility, "pkm-wolio")
        got = auth_app.http.get("/not-in-the-table", headers=auth_app.headers(fac)).json()
        assert got["client"]["organization"] == "Organization/pkm-wolio"
    finally:
        del authorize.RULES[("GET", "/not-in-the-table")]


# --- 401 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/fhir/metadata", "/healthz", "/readyz", "/auth/jwks", "/.well-known/smart-configuration"],
)
def test_public_routes_need_no_token(auth_app: AuthClient, path: str) -> None:
    assert auth_app.http.get(path).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir/Patient/p1"),
        ("GET", "/fhir/Patient"),
        ("POST", "/fhir"),
        ("GET", "/fhir/_history"),
        ("POST", "/ingest/puskesmas"),
        ("GET", "/admin/inbox"),
        ("GET", "/metrics"),
        ("POST", "/fhir/$reindex"),
        ("HEAD", "/fhir/Patient/p1"),
    ],
)
def test_no_token_is_401_with_www_authenticate(
    auth_app: AuthClient, method: str, path: str
) -> None:
    answer = auth_app.http.request(method, path)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="fhirhub"'
    if method != "HEAD":
        _outcome(answer, 401, "login")


def _token_with(claims: dict[str, Any] | None = None, key: Any = None, **header: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISS,
        "sub": "admin-1",
        "aud": AUD,
        "exp": now + 60,
        "iat": now,
        "jti": "x",
        "scope": "system/*.cruds",
        "role": "admin",
    }
    body.update(claims or {})
    key = key or ec_key(SERVER_KEY)
    head = {"alg": "ES256", "kid": SERVER_KEY, "typ": "at+jwt", **header}
    return jwt.encode(head, body, key, algorithms=["ES256"])


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_bad_tokens_are_401(auth_app: AuthClient) -> None:
    auth_app.as_role(Role.admin)  # registers admin-1
    good = _token_with()
    assert auth_app.http.get("/fhir/Patient", headers=auth_app.headers(good)).status_code == 200
    now = int(time.time())
    header, payload, signature = good.split(".")
    forged_payload = _b64(
        {
            **json.loads(base64.urlsafe_b64decode(payload + "==")),
            "role": "x",
            "scope": "system/AuditEvent.rs",
        }
    )
    none_header = _b64({"alg": "none", "kid": SERVER_KEY, "typ": "at+jwt"})
    bad = {
        "expired": _token_with({"exp": now - 120, "iat": now - 500}),
        "forged": f"{header}.{forged_payload}.{signature}",
        "wrongly signed": _token_with(key=ec_key("impostor")),
        "alg none": f"{none_header}.{payload}.",
        "wrong audience": _token_with({"aud": "http://elsewhere/fhir"}),
        "wrong issuer": _token_with({"iss": "http://elsewhere/auth"}),
        "not an access token": _token_with(typ="JWT"),
        "unknown client": _token_with({"sub": "nobody"}),
        "garbage": "abc.def.ghi",
    }
    for name, value in bad.items():
        answer = auth_app.http.get("/fhir/Patient", headers=auth_app.headers(value))
        assert answer.status_code == 401, name
        assert 'error="invalid_token"' in answer.headers["www-authenticate"], name
        _outcome(answer, 401, "login")
    basic = auth_app.http.get("/fhir/Patient", headers={"authorization": "Basic YTpi"})
    assert basic.status_code == 401


def test_a_token_for_another_audience_from_the_same_keys_is_401(auth_app: AuthClient) -> None:
    auth_app.as_role(Role.admin)
    other = TokenIssuer(signing_keys(ec_key(SERVER_KEY)), issuer=ISS, audience="http://x/fhir")
    value, _ = other.issue("admin-1", scope="system/*.cruds", role="admin")
    assert auth_app.http.get("/fhir/Patient", headers=auth_app.headers(value)).status_code == 401


def test_a_revoked_clients_token_is_refused(auth_app: AuthClient) -> None:
    token = auth_app.as_role(Role.sync)
    auth_app.store.revoke("sync-1")
    answer = auth_app.http.get("/fhir/Patient", headers=auth_app.headers(token))
    _outcome(answer, 401, "login")


# --- the matrix: role x interaction x resource type -----------------------------------------

OBS = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "x"},
    "subject": {"reference": "Patient/p1"},
}
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "active": True,
    "managingOrganization": {"reference": "Organization/facility-1"},
}
TXN = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
    ],
}


def _view(*paths: str) -> dict[str, Any]:
    column = [{"name": f"c{i}", "path": p} for i, p in enumerate(paths)]
    view = {"resourceType": "ViewDefinition", "resource": "Patient", "select": [{"column": column}]}
    return {"resourceType": "Parameters", "parameter": [{"name": "viewResource", "resource": view}]}


VIEW_NAMES, VIEW_GENDER = _view("name.family"), _view("gender")

# (role, method, path, body, allowed)
MATRIX: list[tuple[str, str, str, Any, bool]] = [
    # facility: its clinical record, the directory read-only, no indicators, no audit
    ("facility", "GET", "/fhir/Patient/p1", None, True),
    ("facility", "GET", "/fhir/Patient?_id=p1", None, True),
    ("facility", "POST", "/fhir/Observation", OBS, True),
    ("facility", "PUT", "/fhir/Patient/p1", PATIENT, True),
    ("facility", "GET", "/fhir/Organization/org1", None, True),
    ("facility", "POST", "/fhir/Organization", {"resourceType": "Organization"}, False),
    ("facility", "GET", "/fhir/Measure/m1", None, False),
    ("facility", "GET", "/fhir/AuditEvent", None, False),
    ("facility", "GET", "/fhir/_history", None, False),
    ("facility", "GET", "/fhir", None, False),
    ("facility", "POST", "/fhir", TXN, True),
    # subject may point at a Group or Device, which a facility may not read: name the target
    ("facility", "GET", "/fhir/Observation?_include=Observation:subject", None, False),
    ("facility", "GET", "/fhir/Observation?_include=Observation:subject:Patient", None, True),
    ("facility", "GET", "/fhir/Observation?_include=Observation:subject:Group", None, False),
    ("facility", "GET", "/admin/inbox", None, False),
    ("facility", "GET", "/metrics", None, False),
    ("facility", "POST", "/fhir/$reindex", None, False),
    # ... and only its facility's records (docs/auth.md, "What a facility reads")
    ("facility", "GET", "/fhir/Patient/p1/$everything", None, True),
    ("facility", "GET", "/fhir/Patient/p1/_history", None, True),
    ("facility", "GET", "/fhir/Observation/o1", None, True),
    ("facility", "GET", "/fhir/Patient/p2", None, False),
    ("facility", "GET", "/fhir/Patient/p2/_history", None, False),
    ("facility", "GET", "/fhir/Patient/p2/_history/1", None, False),
    ("facility", "GET", "/fhir/Patient/p2/$everything", None, False),
    ("facility", "GET", "/fhir/Observation/o2", None, False),
    ("facility", "PUT", "/fhir/Observation/o2", {**OBS, "id": "o2"}, False),
    ("facility", "DELETE", "/fhir/Observation/o2", None, False),
    ("facility", "PUT", "/fhir/Patient/p2", {**PATIENT, "id": "p2"}, False),
    # analyst: clinical facts and indicators, never the Patient
    ("analyst", "GET", "/fhir/Observation/o1", None, True),
    ("analyst", "GET", "/fhir/Observation?code=x", None, True),
    ("analyst", "GET", "/fhir/Measure/m1", None, True),
    ("analyst", "GET", "/fhir/Patient/p1", None, False),
    ("analyst", "GET", "/fhir/Patient", None, False),
    ("analyst", "GET", "/fhir/Patient/p1/_history", None, False),
    ("analyst", "POST", "/fhir/Observation", OBS, False),
    ("analyst", "DELETE", "/fhir/Observation/o1", None, False),
    ("analyst", "GET", "/fhir/Observation?_include=Observation:subject", None, False),
    ("analyst", "GET", "/fhir/Observation?_include=Observation:subject:Patient", None, False),
    ("analyst", "GET", "/fhir/Observation?_include=*", None, False),
    ("analyst", "GET", "/fhir/Organization?_revinclude=Patient:organization", None, False),
    ("analyst", "GET", "/fhir/Observation?subject:Patient.name=x", None, False),
    ("analyst", "GET", "/fhir/Observation?subject.name=x", None, False),
    ("analyst", "GET", "/fhir/Observation?patient.gender=male", None, False),
    ("analyst", "GET", "/fhir/Organization?_has:Patient:organization:gender=male", None, False),
    ("analyst", "GET", "/fhir/Organization?_has:Observation:performer:code=x", None, True),
    ("analyst", "GET", "/fhir/Patient/p1/$everything", None, False),
    ("analyst", "GET", "/fhir/Patient/p1/Observation", None, True),
    ("analyst", "GET", "/fhir/Patient/p1/*", None, False),
    ("analyst", "GET", "/fhir?_type=Observation,Measure", None, True),
    ("analyst", "GET", "/fhir?_type=Observation,Patient", None, False),
    ("analyst", "POST", "/fhir", TXN, False),
    ("analyst", "POST", "/fhir/ViewDefinition/$viewdefinition-run", VIEW_NAMES, False),
    ("analyst", "POST", "/fhir/ViewDefinition/$viewdefinition-run", VIEW_GENDER, True),
    ("analyst", "GET", "/fhir/ViewDefinition/patient/$viewdefinition-run", None, True),
    ("facility", "GET", "/fhir/ViewDefinition/patient/$viewdefinition-run", None, False),
    (
        "analyst",
        "POST",
        "/fhir",
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": "Patient?name=x"}}],
        },
        False,
    ),
    # steward: the patient index
    ("steward", "GET", "/fhir/Patient/p1", None, True),
    ("steward", "PUT", "/fhir/Patient/p1", PATIENT, True),
    ("steward", "POST", "/fhir/Patient", {"resourceType": "Patient"}, False),
    ("steward", "DELETE", "/fhir/Patient/p1", None, False),
    ("steward", "GET", "/fhir/Observation", None, False),
    # sync: everything but the audit trail and administration
    ("sync", "GET", "/fhir/Patient/p1", None, True),
    ("sync", "POST", "/fhir/Observation", OBS, True),
    # $everything returns the compartment (AuditEvent is in it) and whatever that refers to
    ("sync", "GET", "/fhir/Patient/p1/$everything", None, False),
    ("sync", "GET", "/fhir/Patient/p1/$everything?_type=Observation", None, False),
    ("sync", "GET", "/fhir/AuditEvent", None, False),
    ("sync", "GET", "/fhir/_history", None, False),
    ("sync", "GET", "/fhir/Patient/p1/*", None, False),
    ("sync", "GET", "/admin/inbox", None, False),
    # admin
    ("admin", "GET", "/fhir/AuditEvent", None, True),
    ("admin", "GET", "/fhir/Patient/p1/$everything", None, True),
    ("admin", "GET", "/fhir/_history", None, True),
    ("admin", "GET", "/admin/inbox", None, True),
    ("admin", "GET", "/metrics", None, True),
    ("admin", "POST", "/fhir/Measure/$reindex", None, True),
    ("admin", "POST", "/fhir/AuditEvent", {"resourceType": "AuditEvent"}, False),
]


def test_the_role_matrix(auth_app: AuthClient) -> None:
    _seed(auth_app)
    failures = []
    for role, method, path, body, allowed in MATRIX:
        headers = auth_app.headers(auth_app.as_role(role), **FHIR_JSON)
        if path.endswith("$reindex"):
            headers.pop("content-type")
        answer = auth_app.http.request(method, path, headers=headers, json=body)
        # allowed: past authorisation (a facility's Bundle may then be refused by its adapter)
        ok = answer.status_code not in (401, 403) and answer.status_code < 500
        ok = ok if allowed else answer.status_code == 403
        if not ok:
            failures.append(f"{role} {method} {path}: {answer.status_code} {answer.text[:200]}")
        elif not allowed:
            assert answer.json()["issue"][0]["code"] == "forbidden"
            assert 'error="insufficient_scope"' in answer.headers.get("www-authenticate", ""), path
    assert failures == []


def test_post_search_is_checked_on_its_form_body(auth_app: AuthClient) -> None:
    _seed(auth_app)
    token = auth_app.as_role(Role.analyst)
    form = {"content-type": "application/x-www-form-urlencoded"}
    answer = auth_app.http.post(
        "/fhir/Observation/_search",
        content="_include=Observation:subject",
        headers=auth_app.headers(token, **form),
    )
    _outcome(answer, 403, "forbidden")
    answer = auth_app.http.post(
        "/fhir/Observation/_search", content="_id=o1", headers=auth_app.headers(token, **form)
    )
    assert answer.status_code == 200 and answer.json()["total"] == 1


def test_a_narrower_token_gets_less(auth_app: AuthClient) -> None:
    _seed(auth_app)
    token = auth_app.as_role(Role.sync, scope="system/Patient.r")
    assert auth_app.http.get("/fhir/Patient/p1", headers=auth_app.headers(token)).status_code == 200
    assert auth_app.http.get("/fhir/Patient", headers=auth_app.headers(token)).status_code == 403


def test_ingest_is_for_a_facility_through_its_own_adapter(auth_app: AuthClient) -> None:
    fac = auth_app.headers(auth_app.as_role(Role.facility), **FHIR_JSON)
    assert auth_app.http.post("/ingest/puskesmas", content=b"{}", headers=fac).status_code != 403
    _outcome(auth_app.http.post("/ingest/khanza", content=b"{}", headers=fac), 403, "forbidden")
    ana = auth_app.headers(auth_app.as_role(Role.analyst), **FHIR_JSON)
    _outcome(auth_app.http.post("/ingest/puskesmas", content=b"{}", headers=ana), 403, "forbidden")


def test_rate_limit_is_429_with_retry_after(auth_settings: Settings) -> None:
    settings = auth_settings.model_copy(update={"auth_rate_limit": 0.01, "auth_rate_burst": 2})
    app = create_app(settings, run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as http:
        from auth_app import AuthClient as Client

        from fhirhub.auth.clients import ClientStore

        client = Client(http, ClientStore(app.state.database.engine))
        headers = client.headers(client.as_role(Role.sync))
        codes = [http.get("/fhir/Patient", headers=headers).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        answer = http.get("/fhir/Patient", headers=headers)
        assert int(answer.headers["retry-after"]) >= 1
        _outcome(answer, 429, "throttled")
        other = client.headers(client.as_role(Role.admin))  # another client's bucket
        assert http.get("/fhir/Patient", headers=other).status_code == 200
    app.state.database.engine.dispose()


def test_auth_off_answers_on_loopback_only(db_url: str) -> None:
    app = create_app(Settings(database_url=db_url), run_migrations=False)
    with TestClient(app, base_url="http://127.0.0.1:8080") as local:
        assert local.get("/fhir/Patient").status_code == 200
    with TestClient(app, base_url="http://192.0.2.10:8080") as remote:
        _outcome(remote.get("/fhir/Patient"), 403, "forbidden")
        assert remote.get("/healthz").status_code == 200
    app.state.database.engine.dispose()


def test_a_facility_sees_only_the_status_of_its_own_messages(auth_app: AuthClient) -> None:
    from ingest_factories import city, facility_of, per_patient

    _, bundles = city()
    payload = per_patient(next(b for b in bundles if facility_of(b) == "PKM01"), 1)[0]
    first = auth_app.register("pkm01", Role.facility, organization="Organization/org-pkm01")
    second = auth_app.register("pkm02", Role.facility, organization="Organization/org-pkm02")
    assert first and second
    mine = auth_app.headers(auth_app.token("pkm01", first), **FHIR_JSON)
    theirs = auth_app.headers(auth_app.token("pkm02", second))
    sent = auth_app.http.post("/ingest/puskesmas", json=payload, headers=mine)
    assert sent.status_code == 202, sent.text
    status = f"/ingest/status/{sent.json()['id']}"
    assert auth_app.http.get(status, headers=mine).status_code == 200
    _outcome(auth_app.http.get(status, headers=theirs), 403, "forbidden")
    assert auth_app.http.get("/ingest/status/abc", headers=theirs).status_code == 400
    assert auth_app.http.get("/ingest/status/99999", headers=theirs).status_code == 404
