"""Storing test resources: rows in ``resources``, ``resource_versions`` and the index tables.

Written against the tables directly (with ``index_rows``) so search tests do not depend on the
write path; ``store`` mirrors what the write path does.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from fhirhub.search.indexing import index_rows
from fhirhub.search.tables import INDEX_TABLES, resource_versions, resources

_clock = itertools.count(1_700_000_000_000_000, 1_000)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds")


def store(conn: Connection, resource: dict[str, Any], *, last_updated: int | None = None) -> int:
    """Create or update ``resource`` (its id must be set); returns resources.pk."""
    r = resources
    lu = last_updated if last_updated is not None else next(_clock)
    row = conn.execute(
        select(r.c.pk, r.c.version).where(
            r.c.res_type == resource["resourceType"], r.c.res_id == resource["id"]
        )
    ).first()
    version = 1 if row is None else row.version + 1
    body = dict(resource)
    body["meta"] = {**resource.get("meta", {}), "versionId": str(version), "lastUpdated": _iso(lu)}
    if row is None:
        pk = conn.execute(
            insert(r)
            .values(
                res_type=resource["resourceType"],
                res_id=resource["id"],
                version=1,
                last_updated=lu,
                deleted=False,
            )
            .returning(r.c.pk)
        ).scalar_one()
    else:
        pk = row.pk
        conn.execute(
            update(r).where(r.c.pk == pk).values(version=version, last_updated=lu, deleted=False)
        )
        for t in INDEX_TABLES.values():
            conn.execute(delete(t).where(t.c.resource_pk == pk))
    content = orjson.dumps(body).decode()
    if conn.dialect.name == "postgresql":
        from sqlalchemy import cast, literal
        from sqlalchemy.dialects.postgresql import JSONB

        value: Any = cast(literal(content), JSONB)
    else:
        value = content
    conn.execute(
        insert(resource_versions).values(
            resource_pk=pk,
            version=version,
            res_type=resource["resourceType"],
            res_id=resource["id"],
            last_updated=lu,
            method="PUT",
            deleted=False,
            content=value,
        )
    )
    for table, rows in index_rows(body).items():
        t = INDEX_TABLES[table]
        extra = {"resource_pk": pk, "res_type": resource["resourceType"]}
        conn.execute(insert(t), [{**x, **extra} for x in rows])
    return int(pk)


def remove(conn: Connection, res_type: str, res_id: str) -> None:
    r = resources
    pk = conn.execute(
        select(r.c.pk).where(r.c.res_type == res_type, r.c.res_id == res_id)
    ).scalar_one()
    conn.execute(update(r).where(r.c.pk == pk).values(deleted=True, last_updated=next(_clock)))
    for t in INDEX_TABLES.values():
        conn.execute(delete(t).where(t.c.resource_pk == pk))
