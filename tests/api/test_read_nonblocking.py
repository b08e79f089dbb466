"""Read by id on PostgreSQL through libpq's non-blocking interface (fhirhub.storage.nonblocking):
the same answer as the repository, and robust to what happens to its connection."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from sqlalchemy import Engine

from fhirhub.services.writes import Writer
from fhirhub.storage import nonblocking
from fhirhub.storage.engine import make_engine
from fhirhub.storage.repository import ResourceRepository
from tests.api.factories import patient


@pytest.fixture
def pg_engine(db_url: str) -> Iterator[Engine]:
    if not db_url.startswith("postgresql"):
        pytest.skip("the non-blocking read is PostgreSQL's")
    engine = make_engine(db_url, pool_size=1, connect_timeout=5, statement_timeout=5)
    yield engine
    engine.dispose()


def _stored(engine: Engine) -> str:
    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn))
        result = writer.create(patient())
        writer.flush()
    return result.location.split("/")[1]


def test_it_answers_as_the_repository_does_and_survives_deallocate_all(pg_engine: Engine) -> None:
    res_id = _stored(pg_engine)
    with pg_engine.connect() as conn:
        expected = ResourceRepository(conn).current("Patient", res_id)
    assert anyio.run(nonblocking.current, pg_engine, "Patient", res_id) == expected
    assert anyio.run(nonblocking.current, pg_engine, "Patient", "nobody") is None
    with pg_engine.connect() as conn:  # the pool's one connection: its statements go
        conn.exec_driver_sql("DEALLOCATE ALL")
    assert anyio.run(nonblocking.current, pg_engine, "Patient", res_id) == expected


def test_with_no_idle_connection_it_leaves_the_read_to_a_thread(pg_engine: Engine) -> None:
    res_id = _stored(pg_engine)
    with pg_engine.connect(), pytest.raises(nonblocking.NotAvailable):
        anyio.run(nonblocking.current, pg_engine, "Patient", res_id)
