"""Search criteria to SQL: https://hl7.org/fhir/R4/search.html .

Every criterion becomes ``resources.pk IN (SELECT resource_pk FROM <index table> WHERE ...)``;
criteria on different parameters are ANDed, comma-separated values of one parameter ORed.
Chains (``subject:Patient.name=x``) and reverse chains (``_has:Observation:patient:code=x``)
nest the same construction on the referenced type, to any depth.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select, true

from fhirhub.errors import bad_request
from fhirhub.search import registry
from fhirhub.search.tables import (
    TABLE_OF_TYPE,
    resources,
    search_composite,
    search_reference,
    search_token,
)
from fhirhub.search.values import date_range, normalise, parse_reference, precision_range

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
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
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
# A reverse chain matched by at least this many referencing resources is walked (see ``_has``).
MANY_REFERRERS = 1000


@dataclass
class Unknown:
    """Parameters the server ignored (reported under lenient handling)."""

    names: list[str] = field(default_factory=list)


def split_values(value: str) -> list[str]:
    """Comma-separated alternatives; ``\\,`` is a literal comma."""
    if "\\" not in value:
        return value.split(",")
    out, cur, i = [], "", 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in ",$|\\":
            cur += value[i + 1]
            i += 2
            continue
        if ch == ",":
            out.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    out.append(cur)
    return out


_SEPARATORS = {sep: re.compile(r"(?<!\\)" + re.escape(sep)) for sep in "|$"}


def _split_unescaped(value: str, sep: str) -> list[str]:
    if "\\" not in value:
        return value.split(sep)
    parts = _SEPARATORS[sep].split(value)
    return [p.replace("\\" + sep, sep) for p in parts]


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Criteria:
    """Builds the WHERE clauses of a search on ``res_type`` (None: all types)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        strict: bool = True,
        conn: Any = None,
        walk: bool = False,
    ) -> None:
        self.base_url = (base_url or "").rstrip("/")
        self.strict = strict
        # The clauses serve one page in resource order (no _sort, no count of all matches):
        # a reverse chain may then walk the candidates in that order and stop early.
        self.walk = walk
        self.unknown: list[str] = []
        self.conn = conn  # when given, date criteria read the parameter's span bounds
        self._spans: dict[tuple[str | None, str], tuple[int, bool] | None] = {}

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
        from fhirhub.search.engine import index_only

        r = resources
        clauses = self.clauses(res_type, params, r.c.pk, depth)
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
            return self._has(res_type, name, value, pk_col, depth)
        if "." in name:
            return self._chain(res_type, name, value, pk_col, depth)
        code, _, modifier = name.partition(":")
        if code == "_id":
            return self._column_id(res_type, value, modifier, pk_col, name)
        if code == "_lastUpdated":
            return self._column_updated(res_type, value, modifier, pk_col, name)
        p = self._param(res_type, code, name)
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
            sub = self._token_or(table, code, split_values(value), name)
            return pk_col.not_in(select(table.c.resource_pk).where(*scope, sub))
        if ptype == "token" and modifier == "of-type":
            return pk_col.in_(self._of_type(res_type, code, value, name))
        if ptype == "reference" and modifier == "identifier":
            t = search_token
            scope_t = param_scope(t, res_type, code, ":identifier")
            sub = self._token_or(t, code, split_values(value), name)
            return pk_col.in_(select(t.c.resource_pk).where(*scope_t, sub))
        alternatives = []
        for v in split_values(value):
            alternatives.append(self._value(ptype, table, p, code, modifier, v, name, res_type))
        return pk_col.in_(select(table.c.resource_pk).where(*scope, or_(*alternatives)))

    def _param(self, res_type: str | None, code: str, name: str) -> dict[str, Any] | None:
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
            if modifier == "exact":
                return and_(t.c.value == normalise(v)[:512], t.c.exact == v)
            n = _like_escape(normalise(v))
            if modifier == "contains":
                return t.c.value.like(f"%{n}%", escape="\\")
            return t.c.value.like(f"{n}%", escape="\\")
        if ptype == "token":
            if modifier == "text":
                n = _like_escape(normalise(v))
                return or_(
                    t.c.text.like(f"{n}%", escape="\\"), t.c.text.like(f"% {n}%", escape="\\")
                )
            return self._token(t, v, name)
        if ptype == "date":
            needs_span = v[:2] in ("gt", "ge", "ap")
            bound = self.span_bound(res_type, code) if needs_span else None
            return date_clause(t.c.low, t.c.high, v, name, span=bound, span_col=t.c.span)
        if ptype == "number":
            return number_clause(t.c.low, t.c.high, v, name)
        if ptype == "quantity":
            return quantity_clause(t, v, name)
        if ptype == "reference":
            return self._reference(t, p, modifier, v, name)
        if ptype == "uri":
            if modifier == "below":
                return t.c.value.like(_like_escape(v) + "%", escape="\\")
            if modifier == "above":
                cuts = [m.start() for m in re.finditer("/", v)] + [len(v)]
                prefixes = {v[:i] for i in cuts if i} | {v[: i + 1] for i in cuts if i < len(v)}
                return t.c.value.in_(sorted(prefixes))
            return t.c.value == v
        if ptype == "composite":
            return self._composite(p, v, name)
        raise bad_request(f"parameter '{code}' of type {ptype} is not supported", name)

    def _token(self, t: Any, v: str, name: str) -> ColumnElement[bool]:
        if "|" not in v.replace("\\|", ""):
            if v == "":
                raise bad_request(f"empty token value in '{name}'", name)
            return t.c.code == v.replace("\\|", "|")
        system, code = _split_unescaped(v, "|")[:2]
        if system == "":
            return and_(t.c.code == code, t.c.system.is_(None))
        if code == "":
            return t.c.system == system
        return and_(t.c.code == code, t.c.system == system)

    def _token_or(self, t: Any, code: str, values: list[str], name: str) -> ColumnElement[bool]:
        return or_(*(self._token(t, v, name) for v in values))

    def _of_type(self, res_type: str | None, code: str, value: str, name: str) -> Select:
        t = search_token
        alts = []
        for v in split_values(value):
            parts = _split_unescaped(v, "|")
            if len(parts) != 3 or not parts[1] or not parts[2]:
                raise bad_request(f"':of-type' takes system|code|value, not '{v}'", name)
            alts.append(and_(t.c.system == f"{parts[0]}|{parts[1]}", t.c.code == parts[2]))
        return select(t.c.resource_pk).where(
            *param_scope(t, res_type, code, ":of-type"), or_(*alts)
        )

    def _reference(
        self, t: Any, p: dict[str, Any], modifier: str, v: str, name: str
    ) -> ColumnElement[bool]:
        if p.get("target") == [] or not v:
            raise bad_request(f"empty reference in '{name}'", name)
        ref = v
        if self.base_url and ref.startswith(self.base_url + "/"):
            ref = ref[len(self.base_url) + 1 :]
        if "://" in ref or ref.startswith("urn:"):
            url = ref.split("|", 1)[0]
            ttype, tid, _ = parse_reference(url)
            return t.c.url == url
        ttype, tid, _ = parse_reference(ref)
        if ttype is None:
            if "/" in ref:
                raise bad_request(f"malformed reference '{v}' in '{name}'", name)
            tid = ref
            if modifier:
                ttype = modifier
        elif modifier and modifier != ttype:
            return false()
        if ttype:
            targets = p.get("target") or []
            if targets and ttype not in targets and p["type"] == "reference":
                raise bad_request(f"'{ttype}' is not a target type of parameter '{name}'", name)
            return and_(t.c.target_id == tid, t.c.target_type == ttype)
        return t.c.target_id == tid

    def _composite(self, p: dict[str, Any], v: str, name: str) -> ColumnElement[bool]:
        parts = _split_unescaped(v, "$")
        comps = p["components"]
        if len(parts) != 2 or len(comps) != 2:
            raise bad_request(f"composite '{name}' takes two values joined by '$'", name)
        t = search_composite
        first, second = parts
        c1type, c2type = comps[0]["type"], comps[1]["type"]
        if c1type == "token":
            a = self._token(_Cols(t, "c1_system", "c1_code"), first, name)
        elif c1type == "reference":
            a = t.c.c1_code == first
        else:
            a = t.c.c1_code == normalise(first)
        if c2type == "token":
            b = self._token(_Cols(t, "c2_system", "c2_code"), second, name)
        elif c2type == "string":
            b = t.c.c2_code.like(_like_escape(normalise(second)) + "%", escape="\\")
        elif c2type == "date":
            b = date_clause(t.c.c2_dlow, t.c.c2_dhigh, second, name)
        elif c2type == "quantity":
            b = quantity_clause(_Cols(t, "c2_system", "c2_code", "c2_low", "c2_high"), second, name)
        elif c2type == "number":
            b = number_clause(t.c.c2_low, t.c.c2_high, second, name)
        else:
            b = t.c.c2_code == second
        return and_(a, b)

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

    # --- chains -------------------------------------------------------------------------

    def _chain(
        self, res_type: str | None, name: str, value: str, pk_col: Any, depth: int
    ) -> ColumnElement[bool] | None:
        head, _, rest = name.partition(".")
        code, _, type_mod = head.partition(":")
        if res_type is None:
            raise bad_request(f"chained parameter '{name}' needs a resource type", name)
        p = self._param(res_type, code, name)
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
            inner = Criteria(self.base_url, strict=True, conn=self.conn)
            target_pks = inner.pks(t, [(rest, value)], depth + 1)
            target_ids = select(resources.c.res_id).where(resources.c.pk.in_(target_pks))
            alts.append(and_(ref.c.target_type == t, ref.c.target_id.in_(target_ids)))
        q = select(ref.c.resource_pk).where(*param_scope(ref, res_type, code))
        return pk_col.in_(q.where(or_(*alts)))

    def _many(self, pks: Select[Any]) -> bool:
        """Whether ``pks`` has at least :data:`MANY_REFERRERS` rows, when that matters (a page
        in resource order on PostgreSQL; counted up to that bound, a fraction of a ms)."""
        if not self.walk or self.conn is None or self.conn.dialect.name != "postgresql":
            return False
        bounded = pks.limit(MANY_REFERRERS).subquery()
        return self.conn.execute(select(func.count()).select_from(bounded)).scalar_one() >= (
            MANY_REFERRERS
        )

    def _has(
        self, res_type: str | None, name: str, value: str, pk_col: Any, depth: int
    ) -> ColumnElement[bool]:
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
        inner = Criteria(self.base_url, strict=True, conn=self.conn)
        src_pks = inner.pks(src_type, [(rest, value)], depth + 1)
        ref = search_reference
        if not self._many(src_pks):
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


def param_scope(
    t: Any, res_type: str | None, code: str, suffix: str = ""
) -> list[ColumnElement[bool]]:
    """Index rows of parameter ``code`` of ``res_type`` (through its alias, if it is one)."""
    names, target = registry.stored_as(res_type, code)
    out: list[ColumnElement[bool]] = []
    if res_type:
        out.append(t.c.res_type == res_type)
    if len(names) == 1:
        out.append(t.c.param == names[0] + suffix)
    else:
        out.append(t.c.param.in_([n + suffix for n in names]))
    if target and "target_type" in t.c:
        out.append(t.c.target_type == target)
    return out


class _Cols:
    """A view of a table's columns under other names (composite components)."""

    def __init__(self, t: Any, system: str, code: str, low: str = "", high: str = "") -> None:
        self.c = type("C", (), {})()
        self.c.system = t.c[system]
        self.c.code = t.c[code]
        self.c.unit = t.c[code]
        if low:
            self.c.low = t.c[low]
            self.c.high = t.c[high]


# --- prefixes ---------------------------------------------------------------------------------


def split_prefix(v: str) -> tuple[str, str]:
    if len(v) > 2 and v[:2].isalpha() and v[:2].islower():
        if v[:2] not in PREFIXES:
            raise ValueError(f"unknown prefix '{v[:2]}'")
        return v[:2], v[2:]
    return "eq", v


def date_clause(
    low: Any,
    high: Any,
    v: str,
    name: str,
    span: tuple[int, bool] | None = None,
    span_col: Any = None,
) -> ColumnElement[bool]:
    """Stored range [low, high] against the search value's range, per the prefix.

    With ``span`` (the parameter's largest finite ``high - low`` and whether any row has an open
    end), conditions that only bound ``high`` from below (gt, ge, ap) also bound ``low``: a row
    with ``high >= x`` has ``low >= x - span``, so an index range scan answers them.
    """
    clause = _date_clause(low, high, v, name)
    prefix = split_prefix(v)[0]
    if span is None or span_col is None or prefix not in ("gt", "ge", "ap"):
        return clause
    max_span, open_end = span
    qlo, qhi = date_range(split_prefix(v)[1].replace(" ", "+")) or (0, 0)
    floor = {"gt": qhi, "ge": qlo, "ap": qlo - _ap_delta(qlo)}[prefix] - max_span
    bounded = low >= floor
    return and_(clause, or_(bounded, span_col.is_(None)) if open_end else bounded)


def _ap_delta(qlo: int) -> int:
    """ap: within 10% of the distance between the value and now (at least a day)."""
    now = int(time.time() * 1_000_000)
    return max(abs(now - qlo) // 10, 86_400_000_000)


def _date_clause(low: Any, high: Any, v: str, name: str) -> ColumnElement[bool]:
    try:
        prefix, text = split_prefix(v)
    except ValueError as exc:
        raise bad_request(f"{exc} in date parameter '{name}'", name) from None
    # an unencoded "+" of a time zone arrives as a space
    rng = date_range(text.replace(" ", "+"))
    if rng is None:
        raise bad_request(f"malformed date '{text}' in parameter '{name}'", name)
    qlo, qhi = rng
    # low <= qhi follows from the other two; it bounds the index range scan on low
    contained = and_(low >= qlo, low <= qhi, high <= qhi)
    if prefix == "eq":
        return contained
    if prefix == "ne":
        return not_(contained)
    if prefix == "gt":
        return high > qhi
    if prefix == "lt":
        return low < qlo
    if prefix == "ge":
        return or_(high > qhi, contained)
    if prefix == "le":
        return or_(low < qlo, contained)
    if prefix == "sa":
        return low > qhi
    if prefix == "eb":
        return high < qlo
    delta = _ap_delta(qlo)
    return and_(low <= qhi + delta, high >= qlo - delta)


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise bad_request(f"malformed number '{text}' in parameter '{name}'", name) from None


def number_clause(low: Any, high: Any, v: str, name: str) -> ColumnElement[bool]:
    try:
        prefix, text = split_prefix(v)
    except ValueError as exc:
        raise bad_request(f"{exc} in parameter '{name}'", name) from None
    q = _number(text, name)
    if prefix in ("eq", "ne"):
        lo, hi = precision_range(text)
        inside = and_(low >= lo, high < hi)
        return inside if prefix == "eq" else not_(inside)
    if prefix == "gt":
        return high > q
    if prefix == "lt":
        return low < q
    if prefix == "ge":
        return high >= q
    if prefix == "le":
        return low <= q
    if prefix == "sa":
        return low > q
    if prefix == "eb":
        return high < q
    d = abs(q) * 0.1
    return and_(low <= q + d, high >= q - d)


def quantity_clause(t: Any, v: str, name: str) -> ColumnElement[bool]:
    parts = _split_unescaped(v, "|")
    if len(parts) not in (1, 3):
        raise bad_request(f"quantity '{v}' must be [prefix]number[|system|code]", name)
    clause = number_clause(t.c.low, t.c.high, parts[0], name)
    if len(parts) == 3:
        system, code = parts[1], parts[2]
        if system:
            clause = and_(clause, t.c.system == system, t.c.code == code)
        elif code:
            clause = and_(clause, or_(t.c.code == code, t.c.unit == code))
    return clause


# --- conditional interactions -----------------------------------------------------------------


def find_matches(conn: Any, res_type: str, query: str) -> list[tuple[int, str]]:
    """(resources.pk, res_id) of current ``res_type`` resources matching a URL query string."""
    if not registry.is_resource_type(res_type):
        raise bad_request(f"unknown resource type '{res_type}'")
    params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    from fhirhub.search.engine import custom_plans

    with custom_plans(conn):
        crit = Criteria(strict=True, conn=conn)
        pks = crit.pks(res_type, [(k, v) for k, v in params if k not in RESULT_PARAMS])
        r = resources
        q = select(r.c.pk, r.c.res_id).where(r.c.pk.in_(pks)).order_by(r.c.pk)
        return [(int(pk), str(rid)) for pk, rid in conn.execute(q)]


__all__ = ["Criteria", "find_matches"]
