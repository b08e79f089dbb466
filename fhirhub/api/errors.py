"""The one place where errors become OperationOutcomes."""

from __future__ import annotations

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from fhirhub.api.responses import outcome_response
from fhirhub.errors import FhirError, Issue

log = logging.getLogger("fhirhub.api")


def install(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def fhir_error(_: Request, exc: FhirError) -> Response:
        return outcome_response(exc.status, exc.issues, exc.headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return outcome_response(
            exc.status_code, [Issue(code, str(exc.detail))], dict(exc.headers or {}) or None
        )

    @app.exception_handler(RequestValidationError)
    async def request_error(_: Request, exc: RequestValidationError) -> Response:
        issues = [
            Issue("invalid", str(e.get("msg")), (".".join(str(p) for p in e.get("loc", ())),))
            for e in exc.errors()
        ]
        return outcome_response(400, issues)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Only the route and the exception's type: a message may quote patient data.
        log.error(
            "unhandled %s on %s %s\n%s",
            type(exc).__name__,
            request.method,
            request.url.path,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return outcome_response(
            500, [Issue("exception", "Internal server error; the change was not stored")]
        )
