"""A block read by ``store.gather`` counts the batch's own records as it counts every record
(PostgreSQL reads only the others and adds the batch's from its keys; SQLite reads them all):
the same blocks and the same full keys on both, at every size around a block's limit."""

from __future__ import annotations

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
