"""What routes depend on, as ``Annotated`` aliases: the settings and the unit of work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

import anyio
import anyio.to_thread
import psycopg
from anyio.lowlevel import RunVar
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from fhirhub.config import Settings
from fhirhub.errors import FhirError
from fhirhub.services.writes import Writer
from fhirhub.storage.repository import ResourceRepository, lost_race

T = TypeVar("T")
# Attempts at a unit of work that lost a race to a concurrent writer (see Database.transact).
ATTEMPTS = 4


class LostRace(FhirError):
    """A concurrent request changed the same resources first (409 if it keeps happening)."""


# One limiter per Database and event loop (a limiter belongs to the loop that made it).
_LIMITERS: RunVar[dict[int, anyio.CapacityLimiter]] = RunVar("fhirhub_database_limiters")


class Database:
    """One request is one database transaction, committed when the service returns."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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

    async def run(self, work: Callable[[], T]) -> T:
        """Run blocking database work in a worker thread, within :attr:`concurrency`."""
        limiters = _LIMITERS.get(None)
        if limiters is None:
            limiters = {}
            _LIMITERS.set(limiters)
        limiter = limiters.get(id(self))
        if limiter is None:
            limiter = limiters[id(self)] = anyio.CapacityLimiter(self.concurrency)
        return await anyio.to_thread.run_sync(work, limiter=limiter)

    @contextmanager
    def write(self) -> Iterator[Writer]:
        """One attempt at a unit of work that writes; :meth:`transact` runs it to the end."""
        try:
            with self.engine.begin() as conn:
                writer = Writer(ResourceRepository(conn))
                yield writer
                writer.flush()
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


def base_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    if settings.base_url:
        return settings.base_url.rstrip("/")
    return f"{str(request.base_url).rstrip('/')}/fhir"
