"""Running a search: matching, sorting, keyset paging, counting, includes and bodies.

https://hl7.org/fhir/R4/search.html#sort , #count , #include , #revinclude .

Paging is by keyset, not offset. The order is the ``_sort`` keys, then ``resources.pk`` (a
resource keeps its pk across updates). A page's cursor carries the keys of its last (or, for
``previous``, its first) row and a *cutoff*: the largest pk when the first page was served.
Later pages only consider resources with ``pk <= cutoff`` and keys strictly after the cursor, so
while others write, a page never repeats a resource and never skips one that still matches:
new resources (higher pk) stay out of a paging session; an updated resource keeps its place as
long as its sort keys do not change (the default order, by pk, never changes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    false,
    func,
    literal,
    or_,
    select,
    text,
)

from fhirhub.search import driven, registry
from fhirhub.search.access import Access
from fhirhub.search.tables import (
    TABLE_OF_TYPE,
    param_scope,
    resource_versions,
    resources,
    search_reference,
)

NO_STRING = ""
NO_NUMBER = -1e300
NO_DATE = -(2**62)


@dataclass(frozen=True)
class SortKey:
    code: str
    descending: bool
    ptype: str  # string, token, date, number, quantity, reference, uri, _id, _lastUpdated


@dataclass
class Hit:
    pk: int
    res_type: str
    res_id: str
    keys: tuple[Any, ...]
    body: str | None = None


@contextmanager
def custom_plans(conn: Any) -> Iterator[None]:
    """Plan each search statement for its own values.

    psycopg prepares a statement after five executions and PostgreSQL may then switch to a
    generic plan, which for search (selectivity depends entirely on the values) is often far
    worse: twice as slow on the benchmark. Planning takes about a millisecond.
    """
    driver: Any = getattr(getattr(conn, "connection", None), "driver_connection", None)
    if conn.dialect.name != "postgresql" or not hasattr(driver, "prepare_threshold"):
        yield
        return
    saved = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = saved


def sort_keys(res_type: str | None, spec: str, name: str = "_sort") -> list[SortKey]:
    """Parse ``_sort=-date,status`` into keys (errors raise 400 naming ``_sort``)."""
    from fhirhub.errors import bad_request

    out = []
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            continue
        desc = raw.startswith("-")
        code = raw[1:] if desc else raw
        if code in ("_id", "_lastUpdated"):
            out.append(SortKey(code, desc, code))
            continue
        p = registry.param(res_type or "Resource", code)
        if p is None or "unsupported" in p or p["type"] == "composite":
            raise bad_request(f"cannot sort by '{code}'", name)
        out.append(SortKey(code, desc, p["type"]))
    return out


def _key_expr(key: SortKey, res_type: str | None) -> ColumnElement[Any]:
    r = resources
    if key.ptype == "_id":
        return r.c.res_id
    if key.ptype == "_lastUpdated":
        return r.c.last_updated
    t = TABLE_OF_TYPE[key.ptype]
    agg = func.max if key.descending else func.min
    col, empty = {
        "string": (t.c.get("value"), NO_STRING),
        "token": (t.c.get("code"), NO_STRING),
        "uri": (t.c.get("value"), NO_STRING),
        "reference": (t.c.get("target_id"), NO_STRING),
        "date": (t.c.get("high" if key.descending else "low"), NO_DATE),
        "number": (t.c.get("high" if key.descending else "low"), NO_NUMBER),
        "quantity": (t.c.get("high" if key.descending else "low"), NO_NUMBER),
    }[key.ptype]
    sub = select(agg(col)).where(t.c.resource_pk == r.c.pk, *param_scope(t, res_type, key.code))
    return func.coalesce(sub.scalar_subquery(), literal(empty))


def _after(exprs: Sequence[ColumnElement[Any]], desc: Sequence[bool], values: Sequence[Any]) -> Any:
    """Rows strictly after ``values`` in the order (exprs, desc): a lexicographic comparison."""
    ors = []
    for i, (e, d, v) in enumerate(zip(exprs, desc, values, strict=True)):
        eqs = [exprs[j] == values[j] for j in range(i)]
        ors.append(and_(*eqs, e < v if d else e > v))
    return or_(*ors)


def page(
    conn: Any,
    where: Sequence[ColumnElement[bool]],
    res_type: str | None,
    keys: list[SortKey],
    count: int,
    *,
    cutoff: int | None,
    after: Sequence[Any] | None = None,
    before: Sequence[Any] | None = None,
    rebuild: Callable[[Any], list[ColumnElement[bool]]] | None = None,
) -> tuple[list[Hit], bool, int]:
    """One page of matches with their bodies, whether more follow, and the cutoff.

    ``rebuild(pk_col)`` builds the same criteria over another pk column; with it, a page in pk
    order is driven from the index rows of its first criterion (:mod:`fhirhub.search.driven`).

    ``after``/``before`` are a cursor's keys (ending with pk). Without a ``cutoff`` (a first
    page) the current largest pk is read in the same statement and returned.
    """
    r, v = resources, resource_versions
    if rebuild is not None and not keys:
        drv = driven.driver(where)
        if drv is not None:
            q = driven.page_statement(
                conn,
                drv,
                list(where),
                rebuild,
                res_type,
                count,
                cutoff=cutoff,
                after=after,
                before=before,
            )
            return _fetch(conn, q, count, cutoff=cutoff, before=before)
    exprs = [_key_expr(k, res_type) for k in keys] + [r.c.pk]
    desc = [k.descending for k in keys] + [False]
    # Match, order and limit on the index tables first; only the page's rows fetch bodies.
    inner = select(
        r.c.pk,
        r.c.res_type,
        r.c.res_id,
        r.c.version,
        *[e.label(f"k{i}") for i, e in enumerate(exprs)],
    ).where(r.c.deleted == false(), *where)
    if cutoff is not None:
        inner = inner.where(r.c.pk <= cutoff)
    if res_type:
        inner = inner.where(r.c.res_type == res_type)
    if after is not None:
        inner = inner.where(_after(exprs, desc, after))
    if before is not None:
        inner = inner.where(_after(exprs, [not d for d in desc], before))
        desc = [not d for d in desc]
    order = [e.desc() if d else e.asc() for e, d in zip(exprs, desc, strict=True)]
    sub = inner.order_by(*order).limit(count + 1).subquery("page")
    keys_cols = [sub.c[f"k{i}"] for i in range(len(exprs))]
    cut_col = (
        literal(cutoff)
        if cutoff is not None
        else select(func.coalesce(func.max(resources.c.pk), 0)).scalar_subquery()
    )
    q = (
        select(sub.c.pk, sub.c.res_type, sub.c.res_id, v.c.content, cut_col, *keys_cols)
        .select_from(sub.join(v, and_(v.c.resource_pk == sub.c.pk, v.c.version == sub.c.version)))
        .order_by(*[c.desc() if d else c.asc() for c, d in zip(keys_cols, desc, strict=True)])
    )
    return _fetch(conn, q, count, cutoff=cutoff, before=before)


def _fetch(
    conn: Any, q: Select, count: int, *, cutoff: int | None, before: Sequence[Any] | None
) -> tuple[list[Hit], bool, int]:
    """Runs a page statement (pk, res_type, res_id, body, cutoff, *keys; one row more than the
    page): the hits in page order, whether more follow, and the cutoff."""
    rows = conn.execute(q).all()
    if cutoff is None:
        cutoff = int(rows[0][4]) if rows else max_pk(conn)
    more = len(rows) > count
    rows = rows[:count]
    hits = [Hit(int(x[0]), x[1], x[2], tuple(x[5:]), x[3]) for x in rows]
    if before is not None:
        hits.reverse()
    return hits, more, cutoff


def max_pk(conn: Any) -> int:
    return int(conn.execute(select(func.coalesce(func.max(resources.c.pk), 0))).scalar_one())


def count(
    conn: Any, where: Sequence[ColumnElement[bool]], res_type: str | None, cutoff: int
) -> int:
    r = resources
    q = select(func.count()).select_from(r).where(r.c.deleted == false(), r.c.pk <= cutoff, *where)
    if res_type:
        q = q.where(r.c.res_type == res_type)
    return int(conn.execute(q).scalar_one())


def estimate(
    conn: Any, where: Sequence[ColumnElement[bool]], res_type: str | None, cutoff: int
) -> int:
    """The planner's row estimate on PostgreSQL (cheap); an exact count elsewhere."""
    if conn.dialect.name != "postgresql":
        return count(conn, where, res_type, cutoff)
    r = resources
    q = select(r.c.pk).where(r.c.deleted == false(), r.c.pk <= cutoff, *where)
    if res_type:
        q = q.where(r.c.res_type == res_type)
    sql = q.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar_one()
    if isinstance(plan, str):
        plan = orjson.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def contents(conn: Any, pks: Iterable[int]) -> dict[int, str]:
    """The current body (JSON text) of each resource pk."""
    pks = list(pks)
    if not pks:
        return {}
    r, v = resources, resource_versions
    body = v.c.content
    out: dict[int, str] = {}
    for i in range(0, len(pks), 1000):
        chunk = pks[i : i + 1000]
        q = (
            select(r.c.pk, body)
            .select_from(r.join(v, and_(v.c.resource_pk == r.c.pk, v.c.version == r.c.version)))
            .where(r.c.pk.in_(chunk))
        )
        out.update((int(pk), c) for pk, c in conn.execute(q) if c is not None)
    return out


# --- _include / _revinclude ---------------------------------------------------------------------


@dataclass(frozen=True)
class IncludeSpec:
    source: str  # resource type, or "*"
    param: str  # reference parameter, or "*"
    target: str | None
    iterate: bool


def parse_include(value: str, iterate: bool, name: str) -> IncludeSpec:
    from fhirhub.errors import bad_request

    if value == "*":
        return IncludeSpec("*", "*", None, iterate)
    parts = value.split(":")
    if len(parts) not in (2, 3) or not registry.is_resource_type(parts[0]):
        raise bad_request(f"'{name}' takes Type:parameter[:targetType], not '{value}'", name)
    if parts[1] != "*":
        p = registry.param(parts[0], parts[1])
        if p is None or p["type"] != "reference":
            raise bad_request(f"'{parts[1]}' is not a reference parameter of {parts[0]}", name)
    target = parts[2] if len(parts) == 3 else None
    if target is not None and not registry.is_resource_type(target):
        raise bad_request(f"unknown target type '{target}' in '{name}'", name)
    return IncludeSpec(parts[0], parts[1], target, iterate)


def _spec_filter(spec: IncludeSpec, ref: Any) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if spec.param != "*":
        conds.extend(param_scope(ref, spec.source if spec.source != "*" else None, spec.param))
    elif spec.source != "*":
        conds.append(ref.c.res_type == spec.source)
    if spec.target:
        conds.append(ref.c.target_type == spec.target)
    return conds


def included(
    conn: Any,
    hits: list[Hit],
    specs: list[IncludeSpec],
    reverse: bool,
    limit: int | None = None,
    access: Access | None = None,
) -> list[Hit]:
    """Resources ``hits`` refer to (or, ``reverse``, that refer to them), with their bodies:
    one statement per include parameter, each returning at most ``limit`` rows; only those
    ``access`` reaches, when given."""
    if not hits or not specs:
        return []
    r, v, ref = resources, resource_versions, search_reference
    readable = access.where(None, r.c.pk) if access is not None else []
    out: dict[int, Hit] = {}
    with_body = and_(v.c.resource_pk == r.c.pk, v.c.version == r.c.version)
    if not reverse:
        pks = [h.pk for h in hits]
        for spec in specs:
            targets = (
                select(ref.c.target_type, ref.c.target_id)
                .where(
                    ref.c.resource_pk.in_(pks),
                    ref.c.target_id.is_not(None),
                    *_spec_filter(spec, ref),
                )
                .distinct()
                .subquery("targets")
            )
            q = (
                select(r.c.pk, r.c.res_type, r.c.res_id, v.c.content)
                .select_from(
                    targets.join(
                        r,
                        and_(
                            r.c.res_type == targets.c.target_type, r.c.res_id == targets.c.target_id
                        ),
                    ).join(v, with_body)
                )
                .where(r.c.deleted == false(), *readable)
                .limit(limit)
            )
            for pk, rt, rid, body in conn.execute(q):
                out[int(pk)] = Hit(int(pk), rt, rid, (), body)
        return list(out.values())
    by_type: dict[str, list[str]] = {}
    for h in hits:
        by_type.setdefault(h.res_type, []).append(h.res_id)
    for spec in specs:
        for t, ids in by_type.items():
            if spec.target and spec.target != t:
                continue
            conds = [ref.c.target_type == t, ref.c.target_id.in_(ids), *_spec_filter(spec, ref)]
            q = (
                select(r.c.pk, r.c.res_type, r.c.res_id, v.c.content)
                .select_from(r.join(v, with_body))
                .where(
                    r.c.deleted == false(),
                    r.c.pk.in_(select(ref.c.resource_pk).where(*conds)),
                    *readable,
                )
                .limit(limit)
            )
            for pk, rt, rid, body in conn.execute(q):
                out[int(pk)] = Hit(int(pk), rt, rid, (), body)
    return list(out.values())


def compartment_clause(
    comp_type: str, comp_id: str, res_type: str, pk_col: Any = None
) -> ColumnElement[bool] | None:
    """Resources of ``res_type`` in compartment ``comp_type/comp_id``; None if none can be."""
    names = registry.compartment_rows(comp_type, res_type)
    if not names:
        return None
    ref = search_reference
    sub = select(ref.c.resource_pk).where(
        ref.c.res_type == res_type,
        ref.c.param.in_(names),
        ref.c.target_type == comp_type,
        ref.c.target_id == comp_id,
    )
    return (resources.c.pk if pk_col is None else pk_col).in_(sub)


def type_clause(types: Sequence[str]) -> ColumnElement[bool]:
    return resources.c.res_type.in_(list(types))


def any_of(clauses: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return or_(*clauses) if clauses else false()


def all_of(clauses: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return and_(*clauses) if clauses else literal(True) == literal(True)


def select_pks(where: Sequence[ColumnElement[bool]]) -> Select:
    return select(resources.c.pk).where(*where)
