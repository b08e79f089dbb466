"""The index's locks on PostgreSQL stay within the shared lock table, whatever the batch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mpi_invariants import check
from sqlalchemy import Connection, Engine, text

from fhirhub.mpi import store
from fhirhub.services.patient_index import PatientIndex
from fhirhub.services.writes import Writer
from fhirhub.storage.engine import make_engine
from fhirhub.storage.repository import ResourceRepository
from tests.conftest import _empty_postgres, postgres_url


def advisory_locks(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        text(
            "SELECT mode, count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() GROUP BY mode"
        )
    )
    return {mode: n for mode, n in rows}


@pytest.fixture
def pg() -> Iterator[Engine]:
    """PostgreSQL only: advisory locks are its own (SQLite writers are serial)."""
    url = postgres_url()
    _empty_postgres(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_a_few_keys_are_locked_each_beside_the_index_held_shared(pg: Engine):
    with pg.begin() as conn:
        store.lock(conn, [f"name-dob:K{i}:2000-01-01" for i in range(10)])
        assert advisory_locks(conn) == {"ShareLock": 1, "ExclusiveLock": 10}


def test_a_batch_with_more_keys_than_the_cap_locks_the_whole_index_alone(pg: Engine):
    with pg.begin() as conn:
        store.lock(conn, [f"name-dob:K{i}:2000-01-01" for i in range(store.MAX_KEY_LOCKS + 1)])
        assert advisory_locks(conn) == {"ExclusiveLock": 1}
        store.lock(conn, ["nik:7472010101800001"])  # later key locks of the same transaction
        assert advisory_locks(conn) == {"ExclusiveLock": 2, "ShareLock": 1}


NIK = "https://fhir.kemkes.go.id/id/nik"


def patient(i: int) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "id": f"p{i}",
        "identifier": [
            {"system": "https://fhir.kemkes.go.id/id/nik", "value": f"74720101018{i:05d}"}
        ],
        "name": [{"text": f"Wa Ode Siti {chr(65 + i % 26)}{chr(65 + i // 26 % 26)}"}],
        "gender": "female",
        "birthDate": f"19{50 + i % 50}-01-01",
    }


def test_a_large_batch_of_patients_is_placed_under_the_index_lock(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
):
    """A Bundle of 2,000 Patients has about 24,000 keys: one lock each overflowed PostgreSQL's
    lock table ("out of shared memory"). The cap is lowered here to reach that path cheaply."""
    monkeypatch.setattr(store, "MAX_KEY_LOCKS", 20)
    with pg.begin() as conn:
        w = Writer(ResourceRepository(conn), patient_index=PatientIndex())
        for i in range(30):
            w.update("Patient", f"p{i}", patient(i))
        w.flush()
        assert advisory_locks(conn).get("ShareLock") is None
    with pg.connect() as conn:
        check(conn)
        persons = conn.execute(text("SELECT count(DISTINCT person_id) FROM mpi_records"))
        assert persons.scalar_one() == 30


def _gather(conn: Connection, pid: str, keys: set[str], weak: set[str]) -> store.Gathered:
    limits = {k: 5 for k in keys}  # a cap of 3 others: crowded from 5 records on
    return store.gather(conn, {pid: keys}, limits, replace=True, created={pid}, weak=weak)


def _fill(pg: Engine, key: str, n: int) -> None:
    with pg.begin() as conn:
        store.insert_blocks(conn, [(key, f"old{i}") for i in range(n)])


def _waits(pg: Engine, key: str, weak: set[str]) -> bool:
    """Whether a second writer of ``key`` waits for a first one still in its transaction."""
    with pg.connect() as first, pg.connect() as second:
        _gather(first, "a", {key}, weak)
        second.execute(text("SET lock_timeout = '300ms'"))
        try:
            _gather(second, "b", {key}, weak)
        except Exception as exc:  # psycopg's LockNotAvailable, wrapped by SQLAlchemy
            assert "lock timeout" in str(exc)
            return True
        finally:
            second.rollback()
            first.rollback()
        return False


def test_writers_sharing_a_name_key_take_turns_while_its_block_is_open(pg: Engine):
    key = "name-pc:MHMT:93724"
    _fill(pg, key, 3)  # at its cap: the first writer's read finds it open
    assert _waits(pg, key, weak={key})


def test_a_crowded_name_key_is_nobodys_candidate_and_not_locked(pg: Engine):
    """Two writers whose only shared key is a crowded name key do not wait for each other: no
    one finds a candidate through a block over its cap."""
    key = "name-pc:MHMT:93724"
    _fill(pg, key, 5)
    assert not _waits(pg, key, weak={key})
    with pg.connect() as conn:  # and the block read agrees that it is over its cap
        got = _gather(conn, "c", {key}, weak={key})
        conn.rollback()
    assert key in got.full and key not in got.blocks  # its records are not even sent


def test_an_identifier_key_is_locked_even_when_crowded(pg: Engine):
    key = "nik:7472010101800001"  # a crowded NIK is a review, made by one writer at a time
    _fill(pg, key, 5)
    assert _waits(pg, key, weak=set())
