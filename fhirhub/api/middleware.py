"""One ASGI layer around every request: its request id, the security headers, and the last
catch of an unexpected error (answered and logged by ``fhirhub.api.errors``, never re-raised
to the server, which would log its message: a PostgreSQL error may quote a resource).

Pure ASGI, not ``BaseHTTPMiddleware``: it adds a few header tuples to each response start and
nothing else on the way.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fhirhub.api import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A client's own X-Request-Id is kept when it is short and plain (it goes into logs).
_SANE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,64}")
_NIK_SHAPED = re.compile(rb"(?<![0-9])[0-9]{16}(?![0-9])")  # a client's id is logged: no NIKs

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# The API serves JSON only: nothing in it may load, run or frame anything.
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# Swagger UI (/docs) and ReDoc (/redoc) load their script and styles from jsDelivr and start
# with an inline script; they fetch /openapi.json from here.
_DOCS_CSP = (
    b"content-security-policy",
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    b"font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    b"https://cdn.redoc.ly; worker-src 'self' blob:; frame-ancestors 'none'",
)
_DOCS = ("/docs", "/redoc")


class RequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = errors.REQUEST_ID.set(request_id)
        docs = scope["path"].startswith(_DOCS)
        extra = [*_COMMON, _DOCS_CSP if docs else _API_CSP, (b"x-request-id", request_id.encode())]
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            response = errors.unexpected(scope, exc)
            if not started:
                await response(scope, receive, send_with_headers)
        finally:
            errors.REQUEST_ID.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            if _SANE_ID.fullmatch(value) and not _NIK_SHAPED.search(value):
                return str(value.decode())
            break
    return new_request_id()


def new_request_id() -> str:
    """16 hex digits, never all of them decimal: an id of 16 decimal digits looks like a NIK
    to every scan of the logs for NIKs (one id in about 1,800 would)."""
    while True:
        value = secrets.token_hex(8)
        if not value.isdigit():
            return value


class _HideQuery(logging.Filter):
    """uvicorn's access log line without the query string: search parameters are NIKs and
    names (``Patient?identifier=...``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, mark, _ = args[2].partition("?")
            if mark:
                record.args = (*args[:2], path + "?...", *args[3:])
        return True


def hide_query_in_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _HideQuery) for f in access.filters):
        access.addFilter(_HideQuery())
