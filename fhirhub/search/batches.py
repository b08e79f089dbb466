"""Whole result sets read in keyset batches (by ``resources.pk``), for answers that are not
paged but streamed: Patient/$everything's compartment, and the resources it refers to.

Each batch is one statement, its rows in pk order after the last pk of the previous batch, so
memory stays bounded whatever the set's size. ``cutoff`` (the largest pk when the answer began)
keeps resources created meanwhile out, as in paging.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, select

from fhirhub.search.access import Access
from fhirhub.search.engine import Hit
from fhirhub.search.tables import resource_versions, resources, search_reference


def members(
    conn: Any, where: Sequence[ColumnElement[bool]], cutoff: int, after: int, limit: int
) -> list[Hit]:
    """Up to ``limit`` current resources matching ``where`` with pk above ``after``."""
    r, v = resources, resource_versions
    q = (
        select(r.c.pk, r.c.res_type, r.c.res_id, v.c.content)
        .select_from(r.join(v, and_(v.c.resource_pk == r.c.pk, v.c.version == r.c.version)))
        .where(r.c.deleted == false(), r.c.pk <= cutoff, r.c.pk > after, *where)
        .order_by(r.c.pk)
        .limit(limit)
    )
    return [Hit(int(pk), rt, rid, (), body) for pk, rt, rid, body in conn.execute(q)]


def referenced(
    conn: Any,
    where: Sequence[ColumnElement[bool]],
    cutoff: int,
    after: int,
    limit: int,
    sources: Sequence[int] | None = None,
    access: Access | None = None,
    types: Sequence[str] | None = None,
) -> list[Hit]:
    """Up to ``limit`` current resources, pk above ``after``, that the resources matching
    ``where`` (or only those of ``sources``, pks) refer to and that do not match ``where``
    themselves: one level of references out of the set, each resource once. References are
    those a search parameter indexes (``search_reference``). With ``access``, only those the
    client may read; with ``types``, only of those types."""
    member_pks = select(resources.c.pk).where(
        resources.c.deleted == false(), resources.c.pk <= cutoff, *where
    )
    ref = search_reference.alias("ref_from")
    hop = resources.alias("ref_to")
    origin = ref.c.resource_pk.in_(list(sources) if sources is not None else member_pks)
    targets = (
        select(hop.c.pk)
        .select_from(
            ref.join(
                hop, and_(hop.c.res_type == ref.c.target_type, hop.c.res_id == ref.c.target_id)
            )
        )
        .where(origin, ref.c.target_id.is_not(None))
    )
    t, v = resources.alias("target"), resource_versions
    q = (
        select(t.c.pk, t.c.res_type, t.c.res_id, v.c.content)
        .select_from(t.join(v, and_(v.c.resource_pk == t.c.pk, v.c.version == t.c.version)))
        .where(
            t.c.deleted == false(),
            t.c.pk <= cutoff,
            t.c.pk > after,
            t.c.pk.in_(targets),
            t.c.pk.not_in(member_pks),
            *(access.where(None, t.c.pk) if access is not None else ()),
            *([t.c.res_type.in_(list(types))] if types is not None else []),
        )
        .order_by(t.c.pk)
        .limit(limit)
    )
    return [Hit(int(pk), rt, rid, (), body) for pk, rt, rid, body in conn.execute(q)]
