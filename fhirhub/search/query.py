"""Search criteria to SQL: https://hl7.org/fhir/R4/search.html .

Every criterion becomes ``resources.pk IN (SELECT resource_pk FROM <index table> WHERE ...)``;
criteria on different parameters are ANDed, comma-separated values of one parameter ORed.
Chains (``subject:Patient.name=x``) and reverse chains (``_has:Observation:patient:code=x``)
nest the same construction on the referenced type, to any depth (:mod:`fhirhub.search.chains`).
This module reads each parameter (name, modifier, comma-separated values) and builds its
criterion; the condition of one value is built in :mod:`fhirhub.search.clauses` and
:mod:`fhirhub.search.prefixes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import ColumnElement, Select, false, func, literal, or_, select, true, union_all

from fhirhub.errors import FhirError, bad_request
from fhirhub.search import chains, registry
from fhirhub.search.access import Access
from fhirhub.search.clauses import (
    composite_clause,
    of_type_pks,
    reference_clause,
    string_clause,
    token_any,
    token_clause,
    token_text_clause,
    uri_clause,
)
from fhirhub.search.driven import index_only
from fhirhub.search.engine import custom_plans
from fhirhub.search.prefixes import date_clause, number_clause, quantity_clause
from fhirhub.search.tables import TABLE_OF_TYPE, param_scope, resources, search_token
from fhirhub.search.values import split_values
from fhirhub.storage.engine import chunks

# Parameters that shape the result rather than select resources.
RESULT_PARAMS = {
    "_sort",
    "_count",
    "_include",
    "_revinclude",
    "_total",
    "_summary",
    "_elements",
    "_contained",
    "_containedType",
    "_format",
    "_pretty",
    "_cursor",
    "_type",
    "_since",
}
MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"not", "text", "of-type", "missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "reference": {"identifier", "missing"},
    "uri": {"below", "above", "missing"},
    "composite": {"missing"},
}
MAX_CHAIN_DEPTH = 4


@dataclass
class Unknown:
    """Parameters the server ignored (reported under lenient handling)."""

    names: list[str] = field(default_factory=list)


class Criteria:
    """Builds the WHERE clauses of a search on ``res_type`` (None: all types)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        strict: bool = True,
        conn: Any = None,
        walk: bool = False,
        access: Access | None = None,
    ) -> None:
        self.base_url = (base_url or "").rstrip("/")
        self.strict = strict
        # The clauses serve one page in resource order (no _sort, no count of all matches):
        # a reverse chain may then walk the candidates in that order and stop early.
        self.walk = walk
        self.unknown: list[str] = []
        self.conn = conn  # when given, date criteria read the parameter's span bounds
        self._spans: dict[tuple[str | None, str], tuple[int, bool] | None] = {}
        # The records the client may read (a facility's): every nested search (chain, _has)
        # is held to them too, so a criterion cannot probe records it could not read.
        self.access = access

    def nested(self) -> Criteria:
        """Criteria for the inner search of a chain: strict, on the same connection."""
        return Criteria(self.base_url, strict=True, conn=self.conn, access=self.access)

    def span_bound(self, res_type: str | None, code: str) -> tuple[int, bool] | None:
        """(largest finite span, whether some row has an open end) of a date parameter."""
        key = (res_type, code)
        if key not in self._spans:
            if self.conn is None:
                self._spans[key] = None
            else:
                t = TABLE_OF_TYPE["date"]
                scope = param_scope(t, res_type, code)
                biggest = select(func.max(t.c.span)).where(*scope).scalar_subquery()
                some_open = (
                    select(t.c.resource_pk).where(*scope, t.c.span.is_(None)).limit(1).exists()
                )
                row = self.conn.execute(select(biggest, some_open)).one()
                self._spans[key] = (int(row[0] or 0), bool(row[1]))
        return self._spans[key]

    # --- entry points -------------------------------------------------------------------

    def pks(self, res_type: str | None, params: list[tuple[str, str]], depth: int = 0) -> Select:
        """SELECT resources.pk of current resources matching every parameter."""
        r = resources
        clauses = self.clauses(res_type, params, r.c.pk, depth)
        if self.access is not None:
            clauses.extend(self.access.where(res_type, r.c.pk))
        if res_type:
            # answered from the index tables alone when every criterion allows it
            only = index_only(clauses)
            if only is not None:
                return only
        q = select(r.c.pk).where(r.c.deleted == false())
        if res_type:
            q = q.where(r.c.res_type == res_type)
        for clause in clauses:
            q = q.where(clause)
        return q

    def clauses(
        self,
        res_type: str | None,
        params: list[tuple[str, str]],
        pk_col: Any,
        depth: int = 0,
    ) -> list[ColumnElement[bool]]:
        out = []
        merged: dict[str, list[str]] = {}
        for name, value in params:
            if "\x00" in name or "\x00" in value:  # not storable, so never found: refused
                raise bad_request("NUL characters are not allowed in a search", name)
            if name in RESULT_PARAMS or name.split(":")[0] in RESULT_PARAMS:
                continue
            if self._mergeable(res_type, name):
                merged.setdefault(name, []).append(value)
                continue
            clause = self.criterion(res_type, name, value, pk_col, depth)
            if clause is not None:
                out.append(clause)
        for name, values in merged.items():
            if len(values) == 1:
                clause = self.criterion(res_type, name, values[0], pk_col, depth)
            else:
                clause = self._merged(res_type or "", name, values, pk_col)
            if clause is not None:
                out.append(clause)
        return out

    def _mergeable(self, res_type: str | None, name: str) -> bool:
        """A date, number or quantity parameter with at most one value per resource: its
        criteria (``date=ge2024-01-01&date=lt2024-02-01``) can test the same index row, which
        lets one index range scan answer both."""
        if not res_type or ":" in name or "." in name or name.startswith("_"):
            return False
        p = registry.param(res_type, name)
        return bool(
            p and p.get("single") and "alias" not in p and "unsupported" not in p
            and p["type"] in ("date", "number", "quantity")
        )  # fmt: skip

    def _merged(
        self, res_type: str, code: str, values: list[str], pk_col: Any
    ) -> ColumnElement[bool]:
        p = registry.param(res_type, code)
        assert p is not None
        table = TABLE_OF_TYPE[p["type"]]
        conds = [
            or_(
                *(
                    self._value(p["type"], table, p, code, "", v, code, res_type)
                    for v in split_values(val)
                )
            )
            for val in values
        ]
        scope = param_scope(table, res_type, code)
        return pk_col.in_(select(table.c.resource_pk).where(*scope, *conds))

    # --- one parameter ------------------------------------------------------------------

    def criterion(
        self, res_type: str | None, name: str, value: str, pk_col: Any, depth: int
    ) -> ColumnElement[bool] | None:
        if depth > MAX_CHAIN_DEPTH:
            raise bad_request(f"chain too deep in parameter '{name}'", name)
        if name.startswith("_has:"):
            return chains.has(self, res_type, name, value, pk_col, depth)
        if "." in name:
            return chains.chain(self, res_type, name, value, pk_col, depth)
        code, _, modifier = name.partition(":")
        if code == "_id":
            return self._column_id(res_type, value, modifier, pk_col, name)
        if code == "_lastUpdated":
            return self._column_updated(res_type, value, modifier, pk_col, name)
        p = self.param(res_type, code, name)
        if p is None:
            return None
        ptype = p["type"]
        if modifier and modifier != "missing" and modifier not in MODIFIERS.get(ptype, ()):
            if ptype == "reference" and registry.is_resource_type(modifier):
                pass  # subject:Patient=123
            elif modifier in ("in", "not-in", "below", "above") and ptype == "token":
                raise bad_request(
                    f"modifier ':{modifier}' (terminology) is not supported on '{code}'", name
                )
            else:
                raise bad_request(f"unknown modifier ':{modifier}' on parameter '{code}'", name)
        table = TABLE_OF_TYPE[ptype]
        scope = param_scope(table, res_type, code)
        if modifier == "missing":
            if value not in ("true", "false"):
                raise bad_request(f"':missing' takes true or false, not '{value}'", name)
            has = select(table.c.resource_pk).where(*scope)
            return pk_col.not_in(has) if value == "true" else pk_col.in_(has)
        if ptype == "token" and modifier == "not":
            sub = token_any(table, split_values(value), name)
            return pk_col.not_in(select(table.c.resource_pk).where(*scope, sub))
        if ptype == "token" and modifier == "of-type":
            return pk_col.in_(of_type_pks(res_type, code, value, name))
        if ptype == "reference" and modifier == "identifier":
            t = search_token
            scope_t = param_scope(t, res_type, code, ":identifier")
            sub = token_any(t, split_values(value), name)
            return pk_col.in_(select(t.c.resource_pk).where(*scope_t, sub))
        alternatives = []
        for v in split_values(value):
            alternatives.append(self._value(ptype, table, p, code, modifier, v, name, res_type))
        return pk_col.in_(select(table.c.resource_pk).where(*scope, or_(*alternatives)))

    def param(self, res_type: str | None, code: str, name: str) -> dict[str, Any] | None:
        """The definition of parameter ``code``; an unknown or unsupported one raises 400 when
        strict, else is recorded in ``unknown`` and gives None."""
        p = registry.param(res_type or "Resource", code)
        if p is None or "unsupported" in p:
            reason = (
                p["unsupported"]
                if p
                else f"unknown search parameter '{code}' for {res_type or 'all types'}"
            )
            if self.strict:
                raise bad_request(reason, name)
            self.unknown.append(name)
            return None
        return p

    # --- values per type ----------------------------------------------------------------

    def _value(
        self,
        ptype: str,
        t: Any,
        p: dict[str, Any],
        code: str,
        modifier: str,
        v: str,
        name: str,
        res_type: str | None = None,
    ) -> ColumnElement[bool]:
        if ptype == "string":
            return string_clause(t, modifier, v)
        if ptype == "token":
            if modifier == "text":
                return token_text_clause(t, v)
            return token_clause(t, v, name)
        if ptype == "date":
            needs_span = v[:2] in ("gt", "ge", "ap")
            bound = self.span_bound(res_type, code) if needs_span else None
            return date_clause(t.c.low, t.c.high, v, name, span=bound, span_col=t.c.span)
        if ptype == "number":
            return number_clause(t.c.low, t.c.high, v, name)
        if ptype == "quantity":
            return quantity_clause(t, v, name)
        if ptype == "reference":
            return reference_clause(t, p, modifier, v, name, self.base_url)
        if ptype == "uri":
            return uri_clause(t, modifier, v)
        if ptype == "composite":
            return composite_clause(p, v, name)
        raise bad_request(f"parameter '{code}' of type {ptype} is not supported", name)

    # --- _id and _lastUpdated (columns of resources) ------------------------------------

    def _column_id(
        self, res_type: str | None, value: str, modifier: str, pk_col: Any, name: str
    ) -> ColumnElement[bool]:
        r = resources
        ids = split_values(value)
        if modifier == "missing":
            return true() if value == "false" else false()
        if modifier and modifier != "not":
            raise bad_request(f"unknown modifier ':{modifier}' on parameter '_id'", name)
        q = select(r.c.pk).where(r.c.res_id.in_(ids))
        if res_type:
            q = q.where(r.c.res_type == res_type)
        return pk_col.not_in(q) if modifier == "not" else pk_col.in_(q)

    def _column_updated(
        self, res_type: str | None, value: str, modifier: str, pk_col: Any, name: str
    ) -> ColumnElement[bool]:
        if modifier:
            raise bad_request(f"unknown modifier ':{modifier}' on parameter '_lastUpdated'", name)
        r = resources
        alts = [
            date_clause(r.c.last_updated, r.c.last_updated, v, name) for v in split_values(value)
        ]
        q = select(r.c.pk).where(or_(*alts))
        if res_type:
            q = q.where(r.c.res_type == res_type)
        return pk_col.in_(q)


# --- conditional interactions -----------------------------------------------------------------


def find_matches(
    conn: Any, res_type: str, query: str, access: Access | None = None
) -> list[tuple[int, str]]:
    """(resources.pk, res_id) of current ``res_type`` resources matching a URL query string
    (of those ``access`` reaches, when given)."""
    found = find_matches_many(conn, [(res_type, query)], access)[0]
    if isinstance(found, FhirError):
        raise found
    return found


def find_matches_many(
    conn: Any, conditions: Sequence[tuple[str, str]], access: Access | None = None
) -> list[list[tuple[int, str]] | FhirError]:
    """:func:`find_matches` for each (type, query) of ``conditions``, in one statement (one
    round trip, not one a condition); a condition that cannot be searched gets its error."""
    out: list[list[tuple[int, str]] | FhirError] = []
    built: list[tuple[int, Select]] = []
    with custom_plans(conn):
        for i, (res_type, query) in enumerate(conditions):
            out.append([])
            try:
                built.append((i, _matching(conn, res_type, query, access)))
            except FhirError as err:
                out[i] = err
        r = resources
        for chunk in chunks(built, _MATCHED_AT_ONCE):
            parts = [
                select(literal(i).label("i"), r.c.pk, r.c.res_id).where(r.c.pk.in_(pks))
                for i, pks in chunk
            ]
            for i, pk, rid in sorted(conn.execute(union_all(*parts)).all()):
                found = out[i]
                assert isinstance(found, list)
                found.append((int(pk), str(rid)))
    return out


# SQLite takes at most 500 parts in a compound SELECT
_MATCHED_AT_ONCE = 200


def _matching(conn: Any, res_type: str, query: str, access: Access | None) -> Select:
    if not registry.is_resource_type(res_type):
        raise bad_request(f"unknown resource type '{res_type}'")
    params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    crit = Criteria(strict=True, conn=conn, access=access)
    return crit.pks(res_type, [(k, v) for k, v in params if k not in RESULT_PARAMS])


__all__ = ["Criteria", "find_matches", "find_matches_many"]
