"""Pages in pk order driven from the index rows of their first criterion, and criteria
answered from index rows alone (``index_only``). See docs/search.md, "How a page is found
quickly".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, select
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.selectable import ScalarSelect

from fhirhub.search.tables import resource_versions, resources


def driver(where: Sequence[ColumnElement[bool]]) -> tuple[int, Select] | None:
    """The first criterion ``resources.pk IN (SELECT resource_pk FROM <index table> ...)``, and
    its SELECT. Only index rows may drive: they exist for current, non-deleted resources only
    (``_id`` and ``_lastUpdated`` select from ``resources`` and may see deleted ones)."""
    for i, clause in enumerate(where):
        if (
            isinstance(clause, BinaryExpression)
            and clause.operator is operators.in_op
            and clause.left is resources.c.pk
            and isinstance(clause.right, ScalarSelect)
            and isinstance(clause.right.element, Select)
            and clause.right.element.selected_columns[0].name == "resource_pk"
        ):
            return i, clause.right.element
    return None


def index_only(where: list[ColumnElement[bool]]) -> Select | None:
    """``where`` (over resources.pk) as one SELECT of resource_pk over index tables only, or
    None when some criterion needs ``resources`` (then the caller keeps its own query)."""
    drv = driver(where)
    if drv is None:
        return None
    index, sel = drv
    col = sel.selected_columns[0]
    q = sel
    for i, c in enumerate(where):
        if i == index:
            continue
        if not (
            isinstance(c, BinaryExpression)
            and c.left is resources.c.pk
            and c.operator in (operators.in_op, operators.not_in_op)
            and isinstance(c.right, ScalarSelect)
        ):
            return None
        inner = c.right.element
        q = q.where(col.in_(inner) if c.operator is operators.in_op else col.not_in(inner))
    return q


def _over(
    col: Any,
    clauses: list[ColumnElement[bool]],
    rebuild: Callable[[Any], list[ColumnElement[bool]]],
    skip: int,
    probe: bool = False,
) -> list[ColumnElement[bool]]:
    """``clauses`` (over resources.pk) restated over ``col``: ``pk [NOT] IN (...)`` directly,
    anything else (EXISTS correlated on resources, OR of several) by building them again.
    With ``probe`` (SQLite, which materialises every IN list in full) ``pk IN (...)`` becomes an
    EXISTS probe per candidate."""
    out = []
    for c in clauses:
        if (
            isinstance(c, BinaryExpression)
            and c.left is resources.c.pk
            and c.operator in (operators.in_op, operators.not_in_op)
            and isinstance(c.right, ScalarSelect)
            and isinstance(c.right.element, Select)
        ):
            inner: Select = c.right.element
            if probe:  # per-candidate lookups through the index on resource_pk
                found = inner.where(inner.selected_columns[0] == col).exists()
                out.append(found if c.operator is operators.in_op else ~found)
            else:
                out.append(col.in_(inner) if c.operator is operators.in_op else col.not_in(inner))
        else:
            return [x for i, x in enumerate(rebuild(col)) if i != skip]
    return out


def page_statement(
    conn: Any,
    driver: tuple[int, Select],
    where: list[ColumnElement[bool]],
    rebuild: Callable[[Any], list[ColumnElement[bool]]],
    res_type: str | None,
    count: int,
    *,
    cutoff: int | None,
    after: Sequence[Any] | None,
    before: Sequence[Any] | None,
) -> Select:
    """The statement of a page in pk order found among index rows before any ``resources``
    row is read: (pk, res_type, res_id, body, cutoff, pk), one row more than the page.

    Index rows exist only for current, non-deleted resources (the write path replaces them on
    every write and removes them on delete), so candidates can be intersected, ordered and
    limited on the index tables alone; only the page's rows join ``resources`` and bodies.
    """
    r, v = resources, resource_versions
    index, sel = driver
    d = sel.subquery("drv")
    col = next(iter(d.c))
    probe = conn.dialect.name == "sqlite"
    others = _over(col, [c for i, c in enumerate(where) if i != index], rebuild, index, probe)
    cand = select(col.label("pk")).where(*others).distinct()
    if cutoff is not None:
        cand = cand.where(col <= cutoff)
    if after is not None:
        cand = cand.where(col > after[-1])
    if before is not None:
        cand = cand.where(col < before[-1])
    cand = cand.order_by(col.desc() if before is not None else col.asc())
    c = cand.limit(count + 1).subquery("cand")
    cut_col = (
        literal(cutoff)
        if cutoff is not None
        else select(func.coalesce(func.max(resources.c.pk), 0)).scalar_subquery()
    )
    q = (
        select(r.c.pk, r.c.res_type, r.c.res_id, v.c.content, cut_col, r.c.pk)
        .select_from(
            c.join(r, r.c.pk == c.c.pk).join(
                v, and_(v.c.resource_pk == r.c.pk, v.c.version == r.c.version)
            )
        )
        .where(r.c.deleted == false())
        .order_by(r.c.pk.desc() if before is not None else r.c.pk.asc())
    )
    if res_type:
        q = q.where(r.c.res_type == res_type)
    return q


__all__ = ["driver", "index_only", "page_statement"]
