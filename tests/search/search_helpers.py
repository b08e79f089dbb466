"""Storing test resources through fhirhub's one write path (``fhirhub.services.writes``).

``store`` is an update-as-create with a clock of our own, so that ``_lastUpdated`` values are
known and increasing; validation is skipped (search tests use deliberately partial resources).
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import Connection, select

from fhirhub.search.tables import resources
from fhirhub.services.writes import Writer
from fhirhub.storage.repository import ResourceRepository

_clock = itertools.count(1_700_000_000_000_000, 1_000)


def store(conn: Connection, resource: dict[str, Any], *, last_updated: int | None = None) -> int:
    """Create or update ``resource`` (its id must be set); returns resources.pk."""
    now = last_updated if last_updated is not None else next(_clock)
    writer = Writer(ResourceRepository(conn), now=now)
    writer.update(resource["resourceType"], resource["id"], dict(resource), validated=True)
    writer.flush()
    return _pk(conn, resource["resourceType"], resource["id"])


def remove(conn: Connection, res_type: str, res_id: str) -> None:
    writer = Writer(ResourceRepository(conn), now=next(_clock))
    writer.delete(res_type, res_id)
    writer.flush()


def _pk(conn: Connection, res_type: str, res_id: str) -> int:
    r = resources
    q = select(r.c.pk).where(r.c.res_type == res_type, r.c.res_id == res_id)
    return int(conn.execute(q).scalar_one())
