"""What routes depend on, as ``Annotated`` aliases: the settings and the unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from fhirhub.config import Settings
from fhirhub.errors import FhirError
from fhirhub.services.writes import Writer
from fhirhub.storage.repository import ResourceRepository


class Database:
    """One request is one database transaction, committed when the service returns."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def write(self) -> Iterator[Writer]:
        try:
            with self.engine.begin() as conn:
                writer = Writer(ResourceRepository(conn))
                yield writer
                writer.flush()
        except (IntegrityError, psycopg.errors.IntegrityError):
            # Two writers created the same Type/id at once; the loser's change was rolled back.
            raise FhirError.single(
                409, "conflict", "A concurrent request changed the same resource; retry"
            ) from None

    @contextmanager
    def read(self) -> Iterator[ResourceRepository]:
        with self.engine.connect() as conn:
            conn.execution_options(readonly=True)
            yield ResourceRepository(conn)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


SettingsDep = Annotated[Settings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_database)]


def base_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    if settings.base_url:
        return settings.base_url.rstrip("/")
    return f"{str(request.base_url).rstrip('/')}/fhir"
