"""The index's locks on PostgreSQL stay within the shared lock table, whatever the batch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mpi_invariants import check
from psycopg.errors import LockNotAvailable
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from fhirhub.mpi import store
from fhirhub.mpi.compare import compare_nik, nik_guard
from fhirhub.mpi.features import extract, nik_neighbourhood
from fhirhub.services.patient_index import PatientIndex
from fhirhub.services.writes import Writer
from fhirhub.storage.engine import make_engine
from fhirhub.storage.repository import ResourceRepository
from tests.api import factories
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


# --- which writers of records take turns -----------------------------------------------------

CITIZEN = "7472014501900001"


def _record(pid: str, nik: str | None) -> dict[str, object]:
    """One woman's record as a clinic sends it: name, birth date, phone and street all alike;
    her NIK, another, or none."""
    body = factories.patient(
        nik or "", id=pid, telecom=[{"system": "phone", "value": "081234567890"}],
        address=[{"line": ["Jl. Betoambari No. 7"], "postalCode": "93724"}],
    )  # fmt: skip
    if nik is None:
        del body["identifier"]
    return body


def _writer_waits(pg: Engine, first: dict[str, object], second: dict[str, object]) -> bool:
    """Whether the index's write of ``second`` waits for a writer of ``first`` still in its
    transaction."""
    with pg.connect() as one, pg.connect() as two:
        one.begin()
        w = Writer(ResourceRepository(one), patient_index=PatientIndex())
        w.update("Patient", str(first["id"]), first)
        w.flush()
        two.execute(text("SET lock_timeout = '300ms'"))
        try:
            w = Writer(ResourceRepository(two), patient_index=PatientIndex())
            w.update("Patient", str(second["id"]), second)
            w.flush()
        except (LockNotAvailable, OperationalError) as exc:  # raw, or wrapped by SQLAlchemy
            assert "lock timeout" in str(exc)
            return True
        finally:
            two.rollback()
            one.rollback()
        return False


@pytest.mark.parametrize(
    ("first", "second", "waits"),
    [
        (CITIZEN, "7472024501900002", False),  # another woman's NIK, the rest alike
        (CITIZEN, None, True),  # a record without a NIK may be hers
        (None, CITIZEN, True),
        (None, None, True),
        (CITIZEN, CITIZEN, True),
        (CITIZEN, "7472014501900011", True),  # one digit off: a clerk's typo may be hers
        (CITIZEN, "7472014510900001", True),  # two adjacent digits swapped
    ],
)
def test_writers_take_turns_only_for_records_that_may_link(
    pg: Engine, first: str | None, second: str | None, waits: bool
):
    """Records held to NIKs more than one typo apart never link (the different-nik rule), so
    their writers lock the name, date, address and phone keys they share shared; a record
    without a NIK locks them exclusive, and NIKs one typo apart share a neighbourhood key."""
    a, b = _record("a", first), _record("b", second)
    if first and second:  # the cases are what their comments say
        held = [nik_guard(extract(r)) for r in (a, b)]
        assert None not in held
        assert (compare_nik(*held) == 2) is not waits
    assert _writer_waits(pg, a, b) is waits


def test_any_two_niks_one_typo_apart_share_a_neighbourhood_key():
    nik = "7472014501900001"
    for i in range(len(nik)):
        for digit in "0123456789":
            other = nik[:i] + digit + nik[i + 1 :]
            assert nik_neighbourhood(nik) & nik_neighbourhood(other)
        swapped = nik[:i] + nik[i + 1 : i + 2] + nik[i : i + 1] + nik[i + 2 :]
        assert nik_neighbourhood(nik) & nik_neighbourhood(swapped)
