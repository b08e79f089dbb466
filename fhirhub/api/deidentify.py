"""Every JSON answer to an ``analyst`` client passes through :func:`fhirhub.auth.deidentify.scrub`.

Pure ASGI, inside the gzip layer: it looks at the authenticated client (``scope["state"]``,
set by :func:`fhirhub.api.authorize.authorize`) when the answer starts, and buffers and rewrites
the body only for an analyst; any other answer passes untouched.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request

from fhirhub.api.middleware import ASGIApp, Message, Receive, Scope, Send
from fhirhub.auth.deidentify import mask, scrub
from fhirhub.auth.roles import Role


def _is_analyst(scope: Scope) -> bool:
    client = scope.get("state", {}).get("client")
    return client is not None and getattr(client, "role", None) == Role.analyst


def is_analyst(request: Request) -> bool:
    """Whether the request's client is an analyst."""
    return getattr(getattr(request.state, "client", None), "role", None) == Role.analyst


class DeidentifyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_scrubbed(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if _is_analyst(scope) and _kind(message) is not None:
                    start = message  # held until the whole body is in
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = _scrubbed(b"".join(chunks), _kind(start))
            headers = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, send_scrubbed)


def _kind(message: Message) -> str | None:
    """``json``, ``ndjson`` or ``text`` (CSV, plain text): what is rewritten; None for the rest."""
    for key, value in message.get("headers", []):
        if key.lower() == b"content-type":
            v = value.lower()
            if b"ndjson" in v:
                return "ndjson"
            if b"json" in v:
                return "json"
            if v.startswith(b"text/"):
                return "text"
    return None


def _scrubbed(body: bytes, kind: str | None) -> bytes:
    if not body:
        return body
    try:
        if kind == "ndjson":
            lines = [orjson.dumps(scrub(orjson.loads(x))) for x in body.splitlines() if x.strip()]
            return b"".join(x + b"\n" for x in lines)
        if kind == "text":
            return mask(body.decode("utf-8", errors="replace")).encode()
        return orjson.dumps(scrub(orjson.loads(body)))
    except orjson.JSONDecodeError:
        return b""  # not what it said it was: nothing rather than unscrubbed
