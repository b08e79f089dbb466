"""What routes depend on, as ``Annotated`` aliases: the settings and the unit of work."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
import psycopg
from anyio.lowlevel import RunVar
from fastapi import Depends, Request
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from fhirhub.config import Settings
from fhirhub.errors import FhirError, Issue
from fhirhub.model.resource_types import is_valid_id
from fhirhub.services import audit
from fhirhub.services.writes import Writer
from fhirhub.storage import nonblocking
from fhirhub.storage.repository import ResourceRepository, StoredVersion, lost_race

T = TypeVar("T")
# Attempts at a unit of work that lost a race to a concurrent writer (see Database.transact).
ATTEMPTS = 4


class LostRace(FhirError):
    """A concurrent request changed the same resources first (409 if it keeps happening)."""


# One limiter per Database and event loop (a limiter belongs to the loop that made it).
_LIMITERS: RunVar[dict[int, anyio.CapacityLimiter]] = RunVar("fhirhub_database_limiters")


class Database:
    """One request is one database transaction, committed when the service returns."""

    def __init__(self, engine: Engine, *, search_timeout: float = 5.0) -> None:
        self.engine = engine
        self.search_timeout = search_timeout
        # Units of work run in threads, at most as many at once as the pool keeps connections:
        # past that, each extra one opened and closed a PostgreSQL connection (a backend
        # process) per request, and 32 clients read at two thirds of the rate of 8.
        size = getattr(engine.pool, "size", None)
        self.concurrency = size() if callable(size) else 5
        # A single SELECT sees one snapshot without a transaction around it; on PostgreSQL,
        # autocommit saves the BEGIN and ROLLBACK round trips of a read by id.
        self._one_statement = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )

    def _limiter(self) -> anyio.CapacityLimiter:
        limiters = _LIMITERS.get(None)
        if limiters is None:
            limiters = {}
            _LIMITERS.set(limiters)
        limiter = limiters.get(id(self))
        if limiter is None:
            limiter = limiters[id(self)] = anyio.CapacityLimiter(self.concurrency)
        return limiter

    async def run(self, work: Callable[[], T]) -> T:
        """Run blocking database work in a worker thread, within :attr:`concurrency`."""
        return await anyio.to_thread.run_sync(work, limiter=self._limiter())

    async def search(
        self,
        work: Callable[[Connection], T],
        *,
        request: Request | None = None,
        timeout: float | None = None,
    ) -> T:
        """Run a read-only ``work`` in a worker thread, cancelled in the database when it runs
        past ``timeout`` (default :attr:`search_timeout`) or when the client goes away: 503
        with Retry-After then. PostgreSQL cancels it itself (``SET LOCAL statement_timeout``);
        SQLite is interrupted by a progress handler; either is also cancelled from here a
        moment later, should the database not answer at all."""
        timeout = self.search_timeout if timeout is None else timeout
        cancel = _Canceller(time.monotonic() + timeout)

        def job() -> T:
            with self.engine.connect() as conn:
                conn.execution_options(readonly=True)
                cancel.attach(conn, timeout)
                try:
                    return work(conn)
                except DBAPIError as exc:
                    if cancel.cancelled or _is_cancel(exc):
                        raise search_timeout(timeout) from None
                    raise
                finally:
                    cancel.detach()

        failure: Exception | None = None
        async with anyio.create_task_group() as watchers:
            if request is not None:
                watchers.start_soon(_cancel_on_disconnect, request, cancel)
            watchers.start_soon(_cancel_after, timeout + 1.0, cancel)
            # The last resort, when even the cancel request goes unanswered (the network to
            # the database froze): answer, and leave the thread to end when it can.
            with anyio.move_on_after(timeout + 3.0) as backstop:
                try:
                    result = await anyio.to_thread.run_sync(
                        job, limiter=self._limiter(), abandon_on_cancel=True
                    )
                except Exception as exc:  # raised below, not wrapped in an ExceptionGroup
                    failure = exc
            if backstop.cancelled_caught:
                failure = search_timeout(timeout)
            watchers.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return result

    async def read_by_id(
        self,
        reader: Callable[[ResourceRepository, str, str], T],
        res_type: str,
        res_id: str,
    ) -> T:
        """``reader(repo, res_type, res_id)`` (read.read) off the event loop: on PostgreSQL
        its one statement is awaited on the loop without blocking it (no thread hand-off on
        the hottest route); otherwise, or with no idle connection, in a worker thread. The
        connection's statement timeout bounds it in the database, :attr:`search_timeout` on
        the loop."""
        # Any other id goes the ordinary way, to its 400.
        if self.engine.dialect.name == "postgresql" and is_valid_id(res_id):
            try:
                with anyio.fail_after(self.search_timeout + 1.0):
                    found = await nonblocking.current(self.engine, res_type, res_id)
            except nonblocking.NotAvailable:
                pass
            except (TimeoutError, psycopg.errors.QueryCanceled):
                raise FhirError(
                    503,
                    [Issue("timeout", "The database did not answer the read in time; retry")],
                    {"Retry-After": "5"},
                ) from None
            else:
                return reader(_Fetched(found), res_type, res_id)  # type: ignore[arg-type]

        def run() -> T:
            with self.read(one_statement=True) as repo:
                return reader(repo, res_type, res_id)

        return await self.run(run)

    @contextmanager
    def write(self) -> Iterator[Writer]:
        """One attempt at a unit of work that writes; :meth:`transact` runs it to the end."""
        try:
            with self.engine.begin() as conn:
                writer = Writer(ResourceRepository(conn))
                yield writer
                writer.finish()  # with the AuditEvent of the interaction, in this transaction
            audit.mark_recorded()
        except Exception as exc:
            if lost_race(exc):
                raise LostRace.single(
                    409, "conflict", "A concurrent request changed the same resource; retry"
                ) from None
            if isinstance(exc, IntegrityError | psycopg.errors.IntegrityError):
                raise FhirError.single(
                    409, "conflict", "A concurrent request changed the same resource; retry"
                ) from None
            raise

    def transact(self, work: Callable[[Writer], T]) -> T:
        """Run ``work`` in one transaction, committed when it returns.

        Writers of one resource wait for each other's row locks, but two creates of one new
        Type/id (a unique violation) or two writers each holding what the other wants (a
        deadlock) can only end in an error for one of them. That one's work is rolled back and
        run again, now after the other, as a serial order would have it. ``work`` must leave
        its inputs as it found them.
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.write() as writer:
                    return work(writer)
            except LostRace:
                if attempt == ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def read(self, *, one_statement: bool = False) -> Iterator[ResourceRepository]:
        """A read-only unit of work; ``one_statement`` when the reader runs a single SELECT."""
        engine = self._one_statement if one_statement else self.engine
        with engine.connect() as conn:
            conn.execution_options(readonly=True)
            yield ResourceRepository(conn)


class _Fetched:
    """The one row a read by id needs, already fetched, where read.read expects a
    repository."""

    def __init__(self, found: StoredVersion | None) -> None:
        self.found = found

    def current(self, res_type: str, res_id: str) -> StoredVersion | None:
        return self.found


def search_timeout(seconds: float) -> FhirError:
    # 503, not 408: 408 says the server gave up waiting for the client's request (RFC 9110
    # 15.5.9), and user agents may resend it at once; here the server stopped its own work.
    return FhirError(
        503,
        [
            Issue(
                "timeout",
                f"The request ran longer than {seconds:g} s (FHIRHUB_SEARCH_TIMEOUT) and was "
                "cancelled; narrow it, or retry later",
            )
        ],
        {"Retry-After": "10"},
    )


def _is_cancel(exc: DBAPIError) -> bool:
    """A statement the database cancelled (statement_timeout, a cancel request, interrupt())."""
    orig = exc.orig
    return isinstance(orig, psycopg.errors.QueryCanceled) or (
        isinstance(orig, sqlite3.OperationalError) and "interrupted" in str(orig)
    )


class _Canceller:
    """Cancels, from another thread, the statement that a worker thread runs on one
    connection: psycopg's cancel request, or SQLite's interrupt() and progress handler."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.cancelled = False
        self._lock = threading.Lock()
        self._dbapi: Any = None

    def attach(self, conn: Connection, timeout: float) -> None:
        dbapi = conn.connection.dbapi_connection
        if isinstance(dbapi, sqlite3.Connection):
            dbapi.set_progress_handler(self._sqlite_progress, 10_000)
        else:  # within the read's transaction, reset when it ends
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
        with self._lock:
            self._dbapi = dbapi
            cancelled = self.cancelled
        if cancelled:
            self.cancel()

    def detach(self) -> None:
        with self._lock:
            dbapi, self._dbapi = self._dbapi, None
        if isinstance(dbapi, sqlite3.Connection):
            dbapi.set_progress_handler(None, 0)

    def _sqlite_progress(self) -> int:
        return int(self.cancelled or time.monotonic() > self.deadline)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            dbapi = self._dbapi
            if isinstance(dbapi, sqlite3.Connection):
                dbapi.interrupt()
                return
        if isinstance(dbapi, psycopg.Connection):
            # unreachable: the thread ends when its connection does
            with contextlib.suppress(psycopg.Error):
                dbapi.cancel_safe(timeout=5.0)


async def _cancel_on_disconnect(request: Request, cancel: _Canceller) -> None:
    """Cancel the statement once the client has gone (its body, if any, is read by now)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            await anyio.to_thread.run_sync(cancel.cancel, abandon_on_cancel=True)
            return


async def _cancel_after(seconds: float, cancel: _Canceller) -> None:
    await anyio.sleep(seconds)
    await anyio.to_thread.run_sync(cancel.cancel, abandon_on_cancel=True)


# Both are ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, a hand-off
# that costs more than the attribute lookup itself, on every request.
async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


SettingsDep = Annotated[Settings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_database)]


_ORIGINS: dict[tuple[Any, ...], str] = {}


def origin_key(scope: Any) -> tuple[Any, ...]:
    """What a request's origin URL is made of: scheme, (first) Host header, server address and
    root path."""
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    server = tuple(scope["server"]) if scope.get("server") else None
    return (scope.get("scheme"), host, server, scope.get("root_path", ""))


def origin(request: Request) -> str:
    """``request.base_url`` without its trailing slash, remembered per :func:`origin_key`
    (building it is a URL parse per request; the token check needs it twice on every request).
    The Host header is the client's: the memory is bounded."""
    key = origin_key(request.scope)
    found = _ORIGINS.get(key)
    if found is None:
        found = str(request.base_url).rstrip("/")
        if len(_ORIGINS) >= 256:
            _ORIGINS.clear()
        _ORIGINS[key] = found
    return found


def base_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    if settings.base_url:
        return settings.base_url.rstrip("/")
    return f"{origin(request)}/fhir"
