"""Rendering FHIR responses: media types, ``_format``, ``_pretty``, ``Prefer`` and headers."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhirhub.errors import FhirError, Issue, operation_outcome
from fhirhub.model.instant import to_http_date
from fhirhub.model.json import dumps, loads

FHIR_JSON = "application/fhir+json"
JSON_TYPES = {
    "application/fhir+json",
    "application/json",
    "json",
    "application/json+fhir",
    "text/json",
}
XML_TYPES = {"application/fhir+xml", "application/xml", "xml", "text/xml", "application/xml+fhir"}


def negotiate(request: Request) -> None:
    """Refuse (406) a client that wants a format other than JSON."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        base = fmt.split(";", 1)[0].strip().lower()
        if base not in JSON_TYPES:
            raise FhirError.single(
                406, "not-supported", f"_format={fmt} is not supported; use json", "_format"
            )
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    kinds = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    if any(k in JSON_TYPES or k.endswith("/*") or k == "*/*" for k in kinds):
        return
    raise FhirError.single(406, "not-supported", f"Accept: {accept} cannot be served; use JSON")


def is_pretty(request: Request) -> bool:
    return request.query_params.get("_pretty", "").lower() == "true"


def prefer(request: Request, name: str) -> str | None:
    """The value of one ``Prefer`` preference, e.g. ``return`` or ``handling``."""
    header = request.headers.get("prefer", "")
    for part in header.replace(";", ",").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"').lower()
    return None


def body_bytes(obj: Any, pretty: bool) -> bytes:
    if pretty:
        return dumps(loads(dumps(obj)), pretty=True)  # fragments are re-parsed to indent them
    return dumps(obj)


def fhir_response(
    obj: Any,
    request: Request,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        body_bytes(obj, is_pretty(request)),
        status_code=status,
        headers=headers,
        media_type=FHIR_JSON,
    )


def content_response(
    content: str,
    request: Request,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A stored resource, sent as stored (re-indented only if ``_pretty=true``)."""
    body = dumps(loads(content), pretty=True) if is_pretty(request) else content.encode()
    return Response(body, status_code=status, headers=headers, media_type=FHIR_JSON)


def version_headers(version: int, last_updated: int) -> dict[str, str]:
    return {"ETag": f'W/"{version}"', "Last-Modified": to_http_date(last_updated)}


def outcome_response(
    status: int, issues: list[Issue] | tuple[Issue, ...], headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(operation_outcome(list(issues))),
        status_code=status,
        headers=headers,
        media_type=FHIR_JSON,
    )
