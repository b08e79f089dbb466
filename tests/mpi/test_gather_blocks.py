"""A block read by ``store.gather`` counts the batch's own records as it counts every record
(PostgreSQL reads only the others and adds the batch's from its keys; SQLite reads them all):
the same blocks and the same full keys on both, at every size around a block's limit."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine

from fhirhub.mpi import store

KEY = "name-pc:MHMT:93724"
LIMIT = 5  # a cap of 3 others beside the record itself: full from 5 records on


@pytest.mark.parametrize("stored", range(7))
@pytest.mark.parametrize("batch", [1, 2, 3, 6])
def test_a_block_counts_the_batch_and_the_stored_records_alike(
    engine: Engine, stored: int, batch: int
):
    with engine.begin() as conn:
        store.insert_blocks(conn, [(KEY, f"old{i}") for i in range(stored)])
    own = [f"new{i}" for i in range(batch)]
    other = "name-pc:OTHER:93724"  # a key of one record alone: its block is that record
    keys = {pid: {KEY} for pid in own} | {"lone": {other}}
    with engine.connect() as conn:
        got = store.gather(
            conn,
            keys,
            {KEY: LIMIT, other: LIMIT},
            replace=True,
            created=set(keys),
            weak={KEY, other},
        )
        conn.rollback()
    if stored + batch >= LIMIT:
        assert KEY in got.full and KEY not in got.blocks
    else:
        assert KEY not in got.full
        assert sorted(got.blocks[KEY]) == sorted([f"old{i}" for i in range(stored)] + own)
    assert got.blocks[other] == ["lone"] and other not in got.full


@pytest.mark.parametrize("stored", [0, 3, 4, 5, 8])
def test_a_key_seen_crowded_a_while_ago_is_counted_by_the_lock_and_read_when_under_its_limit(
    engine: Engine, stored: int, monkeypatch: pytest.MonkeyPatch
):
    """A key this process found full before ``CROWDED_TRUSTED`` seconds ago is not read with
    the others on PostgreSQL: the lock counts its block. Had records of it left since (its count
    now under the limit), it is read after all, and its block is what a reader that never knew
    would find."""
    monkeypatch.setattr(store, "CROWDED", {KEY: time.monotonic() - store.CROWDED_TRUSTED - 1})
    with engine.begin() as conn:
        store.insert_blocks(conn, [(KEY, f"old{i}") for i in range(stored)])
    with engine.connect() as conn:
        got = store.gather(
            conn, {"new0": {KEY}}, {KEY: LIMIT}, replace=True, created={"new0"}, weak={KEY}
        )
        postgres = store.is_postgres(conn)
        conn.rollback()
    if stored + 1 >= LIMIT:
        assert KEY in got.full and KEY not in got.blocks
        if postgres:
            assert store.CROWDED[KEY] > time.monotonic() - 60  # the sighting renewed
    else:
        assert KEY not in got.full
        assert sorted(got.blocks[KEY]) == sorted([f"old{i}" for i in range(stored)] + ["new0"])


def test_a_key_seen_crowded_lately_is_neither_locked_nor_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """Within ``CROWDED_TRUSTED`` seconds of this process finding a weak key's block full, the
    key is taken as crowded still (PostgreSQL): no lock, no count, no read, even if records
    left it since. SQLite reads every block."""
    monkeypatch.setattr(store, "CROWDED", {KEY: time.monotonic()})
    locked: list[str] = []
    real = store.lock_statement
    monkeypatch.setattr(
        store,
        "lock_statement",
        lambda keys, crowd=None, shared=(): locked.extend(keys) or real(keys, crowd, shared),
    )
    with engine.begin() as conn:
        store.insert_blocks(conn, [(KEY, "old0")])
    with engine.connect() as conn:
        got = store.gather(
            conn,
            {"new0": {KEY, "nik:7472010101900001"}},
            {KEY: LIMIT, "nik:7472010101900001": LIMIT},
            replace=True,
            created={"new0"},
            weak={KEY},
        )
        postgres = store.is_postgres(conn)
        conn.rollback()
    if postgres:
        assert KEY in got.full and KEY not in got.blocks
        assert locked == ["nik:7472010101900001"]
    else:
        assert sorted(got.blocks[KEY]) == ["new0", "old0"]


def test_a_block_the_batch_itself_fills_is_no_sighting(engine: Engine):
    """A batch of records sharing a key fills its block by itself: had the batch been rolled
    back, the block would be empty, so the key is not taken as crowded later."""
    own = {f"new{i}": {KEY} for i in range(LIMIT + 1)}
    with engine.connect() as conn:
        got = store.gather(conn, own, {KEY: LIMIT}, replace=True, created=set(own), weak={KEY})
        conn.rollback()
    assert KEY in got.full
    assert KEY not in store.CROWDED
    with engine.connect() as conn:  # one record alone, over a block of more than its cap
        store.insert_blocks(conn, [(KEY, f"old{i}") for i in range(LIMIT)])
        got = store.gather(
            conn, {"new0": {KEY}}, {KEY: LIMIT}, replace=True, created={"new0"}, weak={KEY}
        )
        postgres = store.is_postgres(conn)
        conn.rollback()
    assert KEY in got.full
    assert (KEY in store.CROWDED) == postgres
