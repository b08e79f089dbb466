"""Every JSON answer to an ``analyst`` client passes through :func:`fhirhub.auth.deidentify.scrub`.

Pure ASGI, inside the gzip layer: it looks at the authenticated client (``scope["state"]``,
set by :func:`fhirhub.api.authorize.authorize`) when the answer starts, and buffers and rewrites
the body only for an analyst; any other answer passes untouched.
"""

from __future__ import annotations

import orjson

from fhirhub.api.middleware import ASGIApp, Message, Receive, Scope, Send
from fhirhub.auth.deidentify import scrub
from fhirhub.auth.roles import Role


def _is_analyst(scope: Scope) -> bool:
    client = scope.get("state", {}).get("client")
    return client is not None and getattr(client, "role", None) == Role.analyst


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
                if _is_analyst(scope) and _is_json(message):
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
            body = b"".join(chunks)
            if body:
                try:
                    body = orjson.dumps(scrub(orjson.loads(body)))
                except orjson.JSONDecodeError:
                    body = b""  # not what it said it was: nothing rather than unscrubbed
            headers = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, send_scrubbed)


def _is_json(message: Message) -> bool:
    for key, value in message.get("headers", []):
        if key.lower() == b"content-type":
            return b"json" in value.lower()
    return False
