"""Helpers for tests against an app with ``FHIRHUB_AUTH=on``: register clients and get their
tokens through ``/auth/token``, as a client would."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from fhirhub.auth.clients import ClientStore
from fhirhub.auth.roles import Role

SERVER_KEY = "fhirhub-test-1"
FHIR_JSON = {"content-type": "application/fhir+json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


class AuthClient:
    """A TestClient on an auth-on app, with the client store at hand."""

    def __init__(self, http: TestClient, store: ClientStore) -> None:
        self.http = http
        self.store = store
        self.tokens: dict[str, str] = {}
        self.secrets: dict[str, str] = {}

    def register(self, client_id: str, role: Role | str, **kwargs: Any) -> str | None:
        role = Role(role)
        if role is Role.facility:
            kwargs.setdefault("organization", f"Organization/{client_id}")
            kwargs.setdefault("adapter", "puskesmas")
        _, secret = self.store.add(client_id, role, **kwargs)
        return secret

    def token(self, client_id: str, secret: str, scope: str = "") -> str:
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        response = self.http.post(
            "/auth/token",
            content=f"grant_type=client_credentials&scope={scope}",
            headers={**FORM, "authorization": f"Basic {basic}"},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def as_role(self, role: Role | str, client_id: str | None = None, scope: str = "") -> str:
        """A fresh client of ``role`` and a token for it (cached per id and scope)."""
        client_id = client_id or f"{Role(role).value}-1"
        key = f"{client_id} {scope}"
        if key not in self.tokens:
            if self.store.get(client_id) is None:
                self.secrets[client_id] = self.register(client_id, role) or ""
            self.tokens[key] = self.token(client_id, self.secrets[client_id], scope)
        return self.tokens[key]

    def headers(self, token: str, **extra: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}", **extra}
