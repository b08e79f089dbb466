"""The authorisation server's endpoints: ``POST /auth/token``, ``GET /auth/jwks`` and
``/.well-known/smart-configuration`` (at the root and under ``/fhir``, where SMART clients look).

They answer in OAuth's JSON (RFC 6749 §5), not OperationOutcomes. With ``FHIRHUB_AUTH=off``
there is no authorisation server: each answers 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from fhirhub.api.audit import claimed_client
from fhirhub.api.authorize import issuer_url
from fhirhub.api.bodies import read_body
from fhirhub.api.deps import base_url
from fhirhub.auth.server import AuthServer, OAuthError
from fhirhub.errors import FhirError

router = APIRouter(tags=["auth"])
MAX_TOKEN_REQUEST_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={**_NO_STORE, **(headers or {})},
    )


def _server(request: Request) -> AuthServer:
    auth: AuthServer | None = request.app.state.auth
    if auth is None:
        raise FhirError.single(404, "not-found", "Authorisation is off (FHIRHUB_AUTH=off)")
    return auth


@router.post("/auth/token")
async def token(request: Request) -> Response:
    """Client credentials (SMART Backend Services): a secret or a signed JWT assertion."""
    auth = _server(request)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
        raw = await read_body(request, MAX_TOKEN_REQUEST_BYTES)
        pairs = parse_qsl(raw.decode("utf-8", errors="strict"), keep_blank_values=True)
        form = dict(pairs)
        request.state.audit_claimed_client = claimed_client(
            form, request.headers.get("authorization")
        )
        if len(form) != len(pairs):
            raise OAuthError("invalid_request", "a parameter was sent more than once")
        body = await run_in_threadpool(
            auth.token,
            form,
            request.headers.get("authorization"),
            issuer=issuer_url(request),
            audience=base_url(request),
        )
    except UnicodeDecodeError:
        return _json({"error": "invalid_request", "error_description": "not UTF-8"}, 400)
    except OAuthError as exc:
        headers = {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="fhirhub"'
        return _json(exc.body(), exc.status, headers)
    return _json(body)


@router.get("/auth/jwks")
async def jwks(request: Request) -> Response:
    """The public keys that verify fhirhub's access tokens."""
    return _json(_server(request).keys.public_jwks(), headers={"Cache-Control": "max-age=300"})


@router.get("/.well-known/smart-configuration")
async def smart_configuration(request: Request) -> Response:
    return _json(
        _server(request).smart_configuration(issuer_url(request)),
        headers={"Cache-Control": "max-age=300"},
    )


@router.get("/fhir/.well-known/smart-configuration")
async def smart_configuration_fhir(request: Request) -> Response:
    return await smart_configuration(request)
