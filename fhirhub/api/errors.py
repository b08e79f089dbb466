"""The one place where errors become OperationOutcomes.

A server-side failure (5xx) is logged as one line: the request id (also in the answer's
``X-Request-Id`` header and its diagnostics), the route template, the exception's type and
where it was raised; never its message, which may quote a resource (PostgreSQL quotes the
failing value). A traceback, file and line only, is logged at most once a minute for each type
and place, so an outage does not fill the disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from fhirhub.api.responses import outcome_response
from fhirhub.errors import FhirError, Issue

log = logging.getLogger("fhirhub.api")

REQUEST_ID: ContextVar[str] = ContextVar("fhirhub_request_id", default="-")
RETRY_AFTER = "5"  # seconds; a database restart or failover takes a few
TRACEBACK_EVERY = 60.0  # seconds, per exception type and place

# The database is down, unreachable, restarting or too slow: the request may succeed later.
OUTAGES: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection came free in time
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
)


def install(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, exc: FhirError) -> Response:
        if exc.status >= 500:
            _log_line(exc.status, exc, request.scope)
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

    async def outage(request: Request, exc: Exception) -> Response:
        return unexpected(request.scope, exc)

    for kind in OUTAGES:
        app.add_exception_handler(kind, outage)


def unexpected(scope: Any, exc: Exception) -> Response:
    """The answer to an exception no route turned into a FhirError: 503 with Retry-After when
    the database is unavailable or cancelled the statement, otherwise 500. Logged, never
    re-raised."""
    request_id = REQUEST_ID.get()
    if isinstance(exc, OUTAGES):
        timed_out = _is_timeout(exc)
        _log_line(503, exc, scope)
        text = (
            "The database did not answer in time" if timed_out else "The database is not available"
        )
        return outcome_response(
            503,
            [
                Issue(
                    "timeout" if timed_out else "transient",
                    f"{text}; nothing was changed, retry later (request id {request_id})",
                )
            ],
            {"Retry-After": RETRY_AFTER},
        )
    _log_line(500, exc, scope)
    return outcome_response(
        500,
        [
            Issue(
                "exception",
                f"Internal server error; the change was not stored (request id {request_id})",
            )
        ],
    )


def _is_timeout(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable) or (
        isinstance(orig, sqlite3.OperationalError) and "interrupted" in str(orig)
    )


# --- logging -------------------------------------------------------------------------------

_last_traceback: dict[tuple[str, str], float] = {}
_traceback_lock = threading.Lock()


def _log_line(status: int, exc: BaseException, scope: Any = None) -> None:
    """One line per failed request; a file-and-line traceback at most once a minute per
    exception type and place. Neither the message nor any value goes into it."""
    frames = _frames(exc.__traceback__)
    where = frames[-1] if frames else "-"
    kind = type(exc).__name__
    orig = getattr(exc, "orig", None)
    if orig is not None:
        kind += f"({type(orig).__name__})"
    route = getattr((scope or {}).get("route"), "path", "-")
    method = (scope or {}).get("method", "-")
    log.error(
        "request failed status=%s request_id=%s method=%s route=%s error=%s at=%s",
        status,
        REQUEST_ID.get(),
        method,
        route,
        kind,
        where,
    )
    if status < 500 or (status == 503 and isinstance(exc, FhirError)):
        return
    key = (kind, where)
    now = time.monotonic()
    with _traceback_lock:
        if now - _last_traceback.get(key, -TRACEBACK_EVERY) < TRACEBACK_EVERY:
            return
        _last_traceback[key] = now
    log.error(
        "traceback of %s (once a minute at most):\n%s",
        kind,
        "\n".join(f"  {frame}" for frame in frames),
    )


def _frames(tb: TracebackType | None) -> list[str]:
    out = []
    while tb is not None:
        code = tb.tb_frame.f_code
        out.append(f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}")
        tb = tb.tb_next
    return out
