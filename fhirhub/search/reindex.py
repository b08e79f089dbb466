"""$reindex: rebuild the index rows of current resources from their stored bodies.

Needed when search-parameter definitions change (a new custom SearchParameter, a fixed
extractor). Runs in batches of pks, in the caller's transaction.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import delete, false, insert, select

from fhirhub.search.engine import contents
from fhirhub.search.indexing import index_rows
from fhirhub.search.tables import INDEX_TABLES, resources

BATCH = 500


def reindex(conn: Any, res_type: str | None = None) -> int:
    """Re-derive every index row of the current resources (of ``res_type``); returns how many."""
    r = resources
    done = 0
    last = 0
    while True:
        q = select(r.c.pk, r.c.res_type).where(r.c.deleted == false(), r.c.pk > last)
        if res_type:
            q = q.where(r.c.res_type == res_type)
        batch = conn.execute(q.order_by(r.c.pk).limit(BATCH)).all()
        if not batch:
            return done
        pks = [int(pk) for pk, _ in batch]
        types = {int(pk): t for pk, t in batch}
        bodies = contents(conn, pks)
        for t in INDEX_TABLES.values():
            conn.execute(delete(t).where(t.c.resource_pk.in_(pks)))
        staged: dict[str, list[dict[str, Any]]] = {}
        for pk in pks:
            if pk not in bodies:
                continue
            for table, rows in index_rows(orjson.loads(bodies[pk])).items():
                extra = {"resource_pk": pk, "res_type": types[pk]}
                staged.setdefault(table, []).extend({**row, **extra} for row in rows)
        for table, rows in staged.items():
            if rows:
                conn.execute(insert(INDEX_TABLES[table]), rows)
        done += len(pks)
        last = pks[-1]
