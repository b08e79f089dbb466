"""Remembered authorisation decisions (``fhirhub.api.authorize.Decisions``): a GET allowed a
moment ago is allowed again without verifying its token anew, but never beyond what the
decision read: the token's validity, the client's lookup, the route, its types and its query."""

from __future__ import annotations

from typing import Any

import pytest
from auth_app import AuthClient

from fhirhub.api.authorize import Decisions
from fhirhub.auth import server
from fhirhub.auth.roles import Role


def _app_state(auth_app: AuthClient) -> Any:
    return auth_app.http.app.state  # type: ignore[attr-defined]


def test_the_same_get_is_decided_once(
    auth_app: AuthClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = auth_app.headers(auth_app.as_role(Role.sync))
    auth = _app_state(auth_app).auth
    verified: list[str] = []
    original = auth.verify_cached

    def counting(value: str, **kwargs: str) -> Any:
        verified.append(value)
        return original(value, **kwargs)

    monkeypatch.setattr(auth, "verify_cached", counting)
    for _ in range(3):
        assert auth_app.http.get("/fhir/Patient", headers=headers).status_code == 200
    assert len(verified) == 1
    assert auth_app.http.get("/fhir/Patient?gender=male", headers=headers).status_code == 200
    assert len(verified) == 2  # another query is another decision


def test_a_remembered_decision_covers_only_its_query_and_types(auth_app: AuthClient) -> None:
    token = auth_app.as_role(Role.sync, "narrow-1", scope="system/Patient.rs")
    headers = auth_app.headers(token)
    assert auth_app.http.get("/fhir/Patient", headers=headers).status_code == 200
    assert auth_app.http.get("/fhir/Patient", headers=headers).status_code == 200
    wider = "/fhir/Patient?_revinclude=Observation:subject"
    assert auth_app.http.get(wider, headers=headers).status_code == 403
    assert auth_app.http.get("/fhir/Observation", headers=headers).status_code == 403
    assert auth_app.http.get("/fhir/Observation", headers=headers).status_code == 403


def test_a_revoked_client_is_refused_once_its_lookup_lapses(
    auth_app: AuthClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "CLIENT_CACHE_SECONDS", 0)
    headers = auth_app.headers(auth_app.as_role(Role.sync))
    assert auth_app.http.get("/fhir/Patient", headers=headers).status_code == 200
    auth_app.store.revoke("sync-1")
    assert auth_app.http.get("/fhir/Patient", headers=headers).status_code == 401


def test_an_expired_token_is_refused_though_its_request_was_allowed(
    auth_app: AuthClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = auth_app.headers(auth_app.as_role(Role.sync))
    assert auth_app.http.get("/fhir/Patient", headers=headers).status_code == 200
    auth = _app_state(auth_app).auth
    later = auth.now() + auth.lifetime + auth.leeway + 1
    monkeypatch.setattr(auth, "_clock", lambda: later)
    answer = auth_app.http.get("/fhir/Patient", headers=headers)
    assert answer.status_code == 401
    assert "expired" in answer.text


def test_refusals_and_writes_are_not_remembered(auth_app: AuthClient) -> None:
    decisions: Decisions = _app_state(auth_app).decisions
    reader = auth_app.headers(auth_app.as_role(Role.analyst))
    assert auth_app.http.get("/fhir/AuditEvent", headers=reader).status_code == 403
    writer = auth_app.headers(auth_app.as_role(Role.sync), **{"content-type": "application/json"})
    created = auth_app.http.post(
        "/fhir/Patient", content=b'{"resourceType":"Patient"}', headers=writer
    )
    assert created.status_code == 201
    assert len(decisions._known) == 0


def test_decisions_are_bounded() -> None:
    decisions = Decisions(size=2)
    token: Any = type("T", (), {"expires_at": 10**10})()
    for n in range(5):
        decisions.remember((n,), token, None, 10**12, 0)
        assert len(decisions._known) <= 2


def test_a_second_authorization_header_is_not_what_is_remembered(auth_app: AuthClient) -> None:
    good = auth_app.headers(auth_app.as_role(Role.sync))["authorization"]
    both = [("authorization", good), ("authorization", "Bearer planted")]
    assert auth_app.http.get("/fhir/Patient", headers=both).status_code == 200
    planted = {"authorization": "Bearer planted"}
    assert auth_app.http.get("/fhir/Patient", headers=planted).status_code == 401
