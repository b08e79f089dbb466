"""The audit trail's edge (issue 13): every request but the public and operational ones gets
an AuditEvent (:mod:`fhirhub.services.audit`).

:class:`AuditMiddleware` makes the request's audit context current before anything else runs:
who (read from ``request.state.client`` once :mod:`fhirhub.api.authorize` has verified the
token), the client's address, the request id. A write stores its AuditEvent in its own
transaction (``Writer.finish``) and says so (``recorded``); any other request (a read, a
search, a refusal, a write that failed) is handed to the buffer
(:mod:`fhirhub.services.audit_buffer`) once its status is known, off the request path.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Any

import orjson

from fhirhub.api.middleware import ASGIApp, Message, Receive, Scope, Send
from fhirhub.model.instant import now_us
from fhirhub.services import audit
from fhirhub.services.audit_buffer import AuditBuffer, Pending

# Not interactions with anyone's record: probes, documentation, public metadata and keys.
_NOT_AUDITED_PREFIXES = ("/docs", "/redoc", "/openapi.json", "/.well-known", "/fhir/.well-known")
_NOT_AUDITED = {"/healthz", "/readyz", "/metrics", "/fhir/metadata", "/auth/jwks", "/favicon.ico"}


def audited(path: str) -> bool:
    return path not in _NOT_AUDITED and not path.startswith(_NOT_AUDITED_PREFIXES)


def agent_of(state: dict[str, Any]) -> audit.Agent:
    """The client the request's token names; an anonymous agent without one (auth off, or a
    request refused before its token was verified), or the id a token request claimed."""
    token = state.get("client")
    if token is not None:
        return _client_agent(str(token.client_id), str(token.role), token.organization)
    claimed = state.get("audit_claimed_client")
    if isinstance(claimed, str) and claimed:
        return audit.Agent(client_id=claimed[:64])
    return audit.ANONYMOUS_AGENT


@lru_cache(maxsize=1024)
def _client_agent(client_id: str, role: str, organization: str | None) -> audit.Agent:
    return audit.Agent(client_id=client_id, role=role, organization=organization)


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not audited(scope["path"]):
            await self.app(scope, receive, send)
            return
        buffer: AuditBuffer | None = getattr(scope["app"].state, "audit_buffer", None)
        if buffer is None:  # FHIRHUB_AUDIT=off
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        client = scope.get("client")
        context = audit.Context(
            agent=lambda: agent_of(state),
            address=str(client[0]) if client else None,
            request_id=state.get("request_id"),
            method=scope["method"],
            path=scope["path"],
        )
        token = audit.CURRENT.set(context)
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            audit.CURRENT.reset(token)
            if not context.recorded:
                buffer.add(
                    Pending(
                        now_us(),
                        context.method or "GET",
                        context.path or "/",
                        scope.get("query_string", b"").decode("latin-1"),
                        status,
                        agent_of(state),
                        context.address,
                        context.request_id,
                        context.notes.get("content"),
                    )
                )


def claimed_client(form: dict[str, str], authorization: str | None) -> str | None:
    """The client id a token request names (form, Basic header, or an assertion's ``iss``,
    unverified: for the audit trail of a refusal only)."""
    if form.get("client_id"):
        return form["client_id"]
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    assertion = form.get("client_assertion", "")
    parts = assertion.split(".")
    if len(parts) == 3:
        try:
            claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (binascii.Error, ValueError):
            return None
        iss = claims.get("iss") if isinstance(claims, dict) else None
        return iss if isinstance(iss, str) else None
    return None
