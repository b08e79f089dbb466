"""Chains (``subject:Patient.name=x``) and reverse chains (``_has:Observation:patient:code=x``):
the criteria of the referenced (or referencing) type, nested to any depth.

https://hl7.org/fhir/R4/search.html#chaining , #has
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from fhirhub.errors import bad_request
from fhirhub.search import registry
from fhirhub.search.tables import param_scope, resources, search_reference

if TYPE_CHECKING:
    from fhirhub.search.query import Criteria

# A reverse chain matched by at least this many referencing resources is walked (see ``has``).
# Read at call time: tests patch it here.
MANY_REFERRERS = 1000


def chain(
    crit: Criteria, res_type: str | None, name: str, value: str, pk_col: Any, depth: int
) -> ColumnElement[bool] | None:
    """``name`` is ``code[:Type].rest``: resources whose ``code`` refers to one matching
    ``rest=value``."""
    head, _, rest = name.partition(".")
    code, _, type_mod = head.partition(":")
    if res_type is None:
        raise bad_request(f"chained parameter '{name}' needs a resource type", name)
    p = crit.param(res_type, code, name)
    if p is None:
        return None
    if p["type"] != "reference":
        raise bad_request(f"'{code}' is not a reference parameter: cannot chain '{name}'", name)
    targets = [type_mod] if type_mod else list(p.get("target") or [])
    rest_code = rest.split(".")[0].split(":")[0]
    usable = [
        t
        for t in targets
        if registry.is_resource_type(t)
        and (
            rest_code in registry.COLUMN_PARAMS
            or rest_code.startswith("_has")
            or registry.param(t, rest_code) is not None
        )
    ]
    if not usable:
        raise bad_request(
            f"'{rest_code}' is not a parameter of the types '{code}' refers to ({name})",
            name,
        )
    ref = search_reference
    alts = []
    for t in usable:
        target_pks = crit.nested().pks(t, [(rest, value)], depth + 1)
        target_ids = select(resources.c.res_id).where(resources.c.pk.in_(target_pks))
        alts.append(and_(ref.c.target_type == t, ref.c.target_id.in_(target_ids)))
    q = select(ref.c.resource_pk).where(*param_scope(ref, res_type, code))
    return pk_col.in_(q.where(or_(*alts)))


def _many(crit: Criteria, pks: Select[Any]) -> bool:
    """Whether ``pks`` has at least :data:`MANY_REFERRERS` rows, when that matters (a page
    in resource order on PostgreSQL; counted up to that bound, a fraction of a ms)."""
    if not crit.walk or crit.conn is None or crit.conn.dialect.name != "postgresql":
        return False
    bounded = pks.limit(MANY_REFERRERS).subquery()
    return crit.conn.execute(select(func.count()).select_from(bounded)).scalar_one() >= (
        MANY_REFERRERS
    )


def has(
    crit: Criteria, res_type: str | None, name: str, value: str, pk_col: Any, depth: int
) -> ColumnElement[bool]:
    """``name`` is ``_has:Type:reference:rest``: resources referred to, through ``reference``,
    by a ``Type`` matching ``rest=value``."""
    parts = name.split(":", 3)
    if len(parts) != 4 or not parts[3]:
        raise bad_request(f"'_has' takes _has:Type:reference:parameter, not '{name}'", name)
    _, src_type, ref_code, rest = parts
    if not registry.is_resource_type(src_type):
        raise bad_request(f"unknown resource type '{src_type}' in '{name}'", name)
    p = registry.param(src_type, ref_code)
    if p is None or p["type"] != "reference":
        raise bad_request(f"'{ref_code}' is not a reference parameter of {src_type}", name)
    if res_type is None:
        raise bad_request(f"'{name}' needs a resource type", name)
    src_pks = crit.nested().pks(src_type, [(rest, value)], depth + 1)
    ref = search_reference
    if not _many(crit, src_pks):
        # Few referencing resources (or SQLite, which probes a correlated subquery per row
        # without stopping early): the ids they refer to, computed once.
        target_ids = select(ref.c.target_id).where(
            *param_scope(ref, src_type, ref_code),
            ref.c.target_type == res_type,
            ref.c.resource_pk.in_(src_pks),
        )
        r = resources
        q = select(r.c.pk).where(r.c.res_type == res_type, r.c.res_id.in_(target_ids))
        return pk_col.in_(q)
    # Many, for a page in resource order: an EXISTS correlated on the outer resource's id,
    # kept a subplan (OFFSET 0: PostgreSQL does not turn it into a semi-join, whose
    # selectivity it cannot estimate through the reference: it guessed 2 of 1,400 Patients
    # where 1 in 3 pass, and read all 3,800 candidates of a Puskesmas to sort them, 70 ms).
    # The subplan walks the candidates in page order and stops at the end of the page (4
    # ms). Counting or sorting all matches reads them all anyway: the id list does better.
    outer = pk_col.table
    via = None
    if "res_id" not in outer.c:  # pk_col is not resources.pk: reach the id through an alias
        via = resources.alias(f"has_r{depth}")
        outer = via
    f = ref.alias(f"has_{depth}")
    probe = (
        select(f.c.resource_pk)
        .where(
            *param_scope(f, src_type, ref_code),
            f.c.target_type == res_type,
            f.c.target_id == outer.c.res_id,
            f.c.resource_pk.in_(src_pks),
        )
        .correlate(outer)
        .offset(0)
    )
    if via is None:
        return probe.exists()
    return pk_col.in_(select(via.c.pk).where(via.c.res_type == res_type, probe.exists()))


__all__ = ["MANY_REFERRERS", "chain", "has"]
