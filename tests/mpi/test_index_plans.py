"""The index's reads are planned for the tables as they are, not as they were.

psycopg prepares a statement after five executions, and PostgreSQL then keeps one generic plan
for it on that connection until the tables' statistics change. Without autovacuum (this
machine's CI configuration, or a database loaded faster than it follows) that plan is the one
made when the index held a few records: the block read joined every Patient of the store by a
nested loop and took 20-55 ms a Bundle instead of 1.5, growing with the store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from fhirhub.services.patient_index import PatientIndex
from fhirhub.services.writes import Writer
from fhirhub.storage.engine import make_engine
from fhirhub.storage.repository import ResourceRepository
from tests.conftest import _empty_postgres, postgres_url
from tests.mpi.test_index_locks import patient


@pytest.fixture
def pg() -> Iterator[Engine]:
    url = postgres_url()
    _empty_postgres(url)
    engine = make_engine(url, pool_size=1)
    yield engine
    engine.dispose()


def test_the_block_reads_are_never_kept_as_prepared_statements(pg: Engine):
    for i in range(12):  # more than psycopg's prepare threshold, on one connection
        with pg.begin() as conn:
            w = Writer(ResourceRepository(conn), patient_index=PatientIndex())
            w.update("Patient", f"p{i}", patient(i))
            w.flush()
    with pg.connect() as conn:
        prepared = conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars()
        reads = [s for s in prepared if "FROM mpi_blocks" in s or "FROM mpi_records" in s]
        persons = conn.execute(text("SELECT count(DISTINCT person_id) FROM mpi_records"))
        assert persons.scalar_one() == 12
    assert reads == []
