"""Search: http://hl7.org/fhir/R4/search.html (and compartments, $reindex).

``search`` turns the decoded query into criteria (``fhirhub.search.query``), runs one keyset
page of them (``fhirhub.search.engine``) and renders the ``searchset`` Bundle: matches, included
resources, an OperationOutcome for ignored parameters, ``self``/``next``/``previous`` links and
``total`` as ``_total`` asks.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from fhirhub.config import Settings, get_settings
from fhirhub.errors import FhirError, bad_request
from fhirhub.search import engine, registry
from fhirhub.search.access import Access
from fhirhub.search.engine import Hit, IncludeSpec, SortKey
from fhirhub.search.query import RESULT_PARAMS, Criteria
from fhirhub.search.reindex import reindex as _reindex

SUMMARY_VALUES = ("true", "false", "text", "data", "count")
TOTAL_VALUES = ("none", "estimate", "accurate")
MAX_INCLUDE_ROUNDS = 4
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
# Parameters we accept but whose only meaning is the default behaviour.
ACCEPTED = {"_format", "_pretty", "_contained", "_containedType"}


@dataclass(frozen=True)
class SearchLimits:
    """What one search may ask for: each ANDed parameter is one more subquery, so 500 copies of
    ``family`` held a database core for minutes. Past a cap the search is refused (400); the
    spec lets a server limit ``_include``d resources, which the Bundle then says."""

    max_parameters: int = 64
    max_values: int = 500
    max_included: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchLimits:
        return cls(
            settings.search_max_parameters,
            settings.search_max_values,
            settings.search_max_included,
        )


def check_limits(params: list[tuple[str, str]], limits: SearchLimits) -> None:
    """400 (too-costly) for a search with more parameters or values than ``limits`` allow."""
    if len(params) > limits.max_parameters:
        raise bad_request(
            f"A search may have at most {limits.max_parameters} parameters "
            f"(FHIRHUB_SEARCH_MAX_PARAMETERS); this one has {len(params)}",
            code="too-costly",
        )
    values = sum(v.count(",") + 1 for _, v in params)
    if values > limits.max_values:
        raise bad_request(
            f"A search may have at most {limits.max_values} values in all its parameters "
            f"(FHIRHUB_SEARCH_MAX_VALUES); this one has {values}",
            code="too-costly",
        )


def search(
    conn: Any,
    *,
    res_type: str | None,
    params: list[tuple[str, str]],
    base_url: str,
    compartment: tuple[str, str] | None = None,
    strict: bool = False,
    limits: SearchLimits | None = None,
    access: Access | None = None,
) -> dict[str, Any]:
    """A ``searchset`` Bundle of the resources matching ``params``; with ``access``, of those
    the client may read (the matches, the count, what is included and what chains and ``_has``
    look at: :mod:`fhirhub.search.access`)."""
    if res_type is not None and not registry.is_resource_type(res_type):
        raise FhirError.single(404, "not-supported", f"unknown resource type '{res_type}'")
    base_url = base_url.rstrip("/")
    settings = get_settings()
    limits = limits or SearchLimits.from_settings(settings)
    check_limits(params, limits)
    ctl = _controls(res_type, params, settings.default_page_size, settings.max_page_size)
    ctl.max_included = limits.max_included
    # Only a page in resource order, with no count of all matches, can stop early.
    walk = not ctl.sort and ctl.count > 0 and ctl.summary != "count" and ctl.total != "accurate"
    crit = Criteria(base_url, strict=strict, conn=conn, walk=walk, access=access)
    ctl.access = access
    types = _types(res_type, ctl, compartment)

    def rebuild(pk_col: Any) -> list[Any]:
        again = Criteria(base_url, strict=strict, conn=conn, walk=walk, access=access)
        again._spans = crit._spans
        return _where(again, res_type, types, params, compartment, pk_col=pk_col)

    with engine.custom_plans(conn):
        where = _where(crit, res_type, types, params, compartment)
        return _run(
            conn, res_type, params, base_url, ctl, where, crit.unknown, compartment, rebuild=rebuild
        )


def reindex(conn: Any, *, res_type: str | None = None) -> int:
    """Rebuild the index rows of every current resource (of ``res_type``); returns how many."""
    if res_type is not None and not registry.is_resource_type(res_type):
        raise bad_request(f"unknown resource type '{res_type}'", "type")
    return _reindex(conn, res_type)


# --- parsing the result parameters ---------------------------------------------------------


class _Controls:
    def __init__(self) -> None:
        self.count = 50
        self.sort: list[SortKey] = []
        self.includes: list[IncludeSpec] = []
        self.revincludes: list[IncludeSpec] = []
        self.total: str | None = None
        self.summary: str | None = None
        self.elements: list[str] | None = None
        self.types: list[str] | None = None
        self.cursor: dict[str, Any] | None = None
        self.max_included = SearchLimits.max_included
        self.access: Access | None = None


def _controls(
    res_type: str | None, params: list[tuple[str, str]], default: int, maximum: int
) -> _Controls:
    c = _Controls()
    c.count = default
    for name, value in params:
        base, _, mod = name.partition(":")
        if base == "_count":
            c.count = count_value(value, maximum, name)
        elif base == "_sort":
            c.sort.extend(engine.sort_keys(res_type, value, name))
        elif base in ("_include", "_revinclude"):
            if mod not in ("", "iterate", "recurse"):
                raise bad_request(f"unknown modifier ':{mod}' on '{base}'", name)
            spec = engine.parse_include(value, mod in ("iterate", "recurse"), name)
            (c.includes if base == "_include" else c.revincludes).append(spec)
        elif base == "_total":
            if value not in TOTAL_VALUES:
                raise bad_request(f"_total takes none, estimate or accurate, not '{value}'", name)
            c.total = value
        elif base == "_summary":
            if value not in SUMMARY_VALUES:
                raise bad_request(
                    f"_summary takes {', '.join(SUMMARY_VALUES)}; not '{value}'", name
                )
            c.summary = None if value == "false" else value
        elif base == "_elements":
            c.elements = [e.strip() for e in value.split(",") if e.strip()]
        elif base == "_type":
            types = [t.strip() for t in value.split(",") if t.strip()]
            for t in types:
                if not registry.is_resource_type(t):
                    raise bad_request(f"unknown resource type '{t}' in _type", name)
            c.types = (c.types or []) + types
        elif base == "_cursor":
            c.cursor = _decode_cursor(value)
    return c


def count_value(value: str, maximum: int, name: str = "_count") -> int:
    """``_count`` as a number of at most ``maximum``: ASCII digits, at most 9 of them (400
    saying why otherwise). Search and history both read it here."""
    if value.isascii() and value.isdigit() and len(value) <= 9:
        return min(int(value), maximum)
    if value.isascii() and value.isdigit():
        message = "_count must be at most 999999999"
    else:
        negative = value.startswith("-") and value[1:].isascii() and value[1:].isdigit()
        wanted = "0 or more" if negative else "a whole number"
        message = f"_count must be {wanted}, not '{value[:40]}'"
    raise bad_request(message, name)


def _types(
    res_type: str | None, ctl: _Controls, compartment: tuple[str, str] | None
) -> list[str] | None:
    if res_type is not None:
        return [res_type]
    if compartment is not None:
        members = sorted(registry.compartment(compartment[0]))
        return [t for t in members if ctl.types is None or t in ctl.types]
    return ctl.types


def _where(
    crit: Criteria,
    res_type: str | None,
    types: list[str] | None,
    params: list[tuple[str, str]],
    compartment: tuple[str, str] | None,
    pk_col: Any = None,
) -> list[Any]:
    from fhirhub.search.tables import resources

    pk = resources.c.pk if pk_col is None else pk_col

    filters = [(k, v) for k, v in params if k.split(":")[0] not in RESULT_PARAMS | ACCEPTED]
    if compartment is not None:
        comp_type = compartment[0]
        if not registry.is_resource_type(comp_type) or not registry.compartment(comp_type):
            raise bad_request(f"'{comp_type}' is not a compartment", "compartment")
    access = crit.access
    if res_type is not None or types is None:
        where = crit.clauses(res_type, filters, pk)
        if compartment is not None and res_type is not None:
            c = engine.compartment_clause(compartment[0], compartment[1], res_type, pk)
            where.append(c if c is not None else engine.any_of([]))
        if access is not None:
            where.extend(access.where(res_type, pk))
        return where
    # several types (_type, or a compartment's members): each type with its own criteria
    per_type = []
    for t in types:
        clause = [resources.c.res_type == t, *crit.clauses(t, filters, pk)]
        if compartment is not None:
            c = engine.compartment_clause(compartment[0], compartment[1], t, pk)
            if c is None:
                continue
            clause.append(c)
        if access is not None:
            clause.extend(access.where(t, pk))
        per_type.append(engine.all_of(clause))
    crit.unknown = sorted(set(crit.unknown))
    return [engine.any_of(per_type)]


# --- running and rendering -----------------------------------------------------------------


def _run(
    conn: Any,
    res_type: str | None,
    params: list[tuple[str, str]],
    base_url: str,
    ctl: _Controls,
    where: list[Any],
    unknown: list[str],
    compartment: tuple[str, str] | None,
    *,
    path: str | None = None,
    rebuild: Any = None,
    include: Callable[[list[Hit]], list[Hit]] | None = None,
) -> dict[str, Any]:
    cur = ctl.cursor
    cutoff: int | None = int(cur["cut"]) if cur else None
    if cur and cur.get("sort") != _sort_sig(ctl.sort):
        raise bad_request("_cursor belongs to a search with another _sort", "_cursor")
    if cur and not _cursor_fits(cur, ctl.sort):
        raise bad_request("_cursor is not a page of this server", "_cursor")
    hits: list[Hit] = []
    more = False
    if ctl.summary != "count" and ctl.count > 0:
        after = cur["k"] if cur and cur["d"] == "n" else None
        before = cur["k"] if cur and cur["d"] == "p" else None
        hits, more, cutoff = engine.page(
            conn,
            where,
            res_type,
            ctl.sort,
            ctl.count,
            cutoff=cutoff,
            after=after,
            before=before,
            rebuild=rebuild,
        )
    if cutoff is None:
        cutoff = engine.max_pk(conn)
    total: int | None = None
    first_page = cur is None
    if ctl.summary == "count" or ctl.total == "accurate" or ctl.count == 0:
        total = engine.count(conn, where, res_type, cutoff)
    elif ctl.total == "estimate":
        total = engine.estimate(conn, where, res_type, cutoff)
    elif ctl.total is None and first_page and not more:
        total = len(hits)

    if path is None:
        path = res_type or ""
        if compartment is not None:
            path = f"{compartment[0]}/{compartment[1]}" + (f"/{res_type}" if res_type else "/*")
    self_base = f"{base_url}/{path}" if path else base_url
    kept = [(k, v) for k, v in params if k not in unknown and k != "_cursor"]
    links = [{"relation": "self", "url": _url(self_base, [*kept, *_cursor_param(cur)])}]
    sig = _sort_sig(ctl.sort)
    has_next = more if (cur is None or cur["d"] == "n") else True
    has_prev = cur is not None and (cur["d"] == "n" or more)
    if hits and has_next:
        token = _encode_cursor({"d": "n", "k": _keys(hits[-1]), "cut": cutoff, "sort": sig})
        links.append({"relation": "next", "url": _url(self_base, [*kept, ("_cursor", token)])})
    if hits and has_prev:
        token = _encode_cursor({"d": "p", "k": _keys(hits[0]), "cut": cutoff, "sort": sig})
        links.append({"relation": "previous", "url": _url(self_base, [*kept, ("_cursor", token)])})

    entries: list[dict[str, Any]] = []
    if unknown:
        entries.append(_outcome_entry(unknown))
    extra: list[Hit] = []
    if hits and (ctl.includes or ctl.revincludes):
        extra, cut_short = _includes(conn, hits, ctl)
        if cut_short:
            entries.append(_included_limit_entry(ctl.max_included))
    elif hits and include is not None:
        extra = include(hits)
    for group, mode in ((hits, "match"), (extra, "include")):
        for h in group:
            if h.body is not None:
                entries.append(_entry(base_url, h.res_type, h.res_id, h.body, mode, ctl))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None and ctl.total != "none":
        bundle["total"] = total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle


def _includes(conn: Any, hits: list[Hit], ctl: _Controls) -> tuple[list[Hit], bool]:
    """The included resources, at most ``ctl.max_included``, and whether more were left out."""
    seen = {h.pk for h in hits}
    out: list[Hit] = []
    frontier = hits
    cap = ctl.max_included
    for round_ in range(MAX_INCLUDE_ROUNDS):
        inc = [s for s in ctl.includes if round_ == 0 or s.iterate]
        rev = [s for s in ctl.revincludes if round_ == 0 or s.iterate]
        if not inc and not rev:
            break
        # One more than still fits (plus the ones already seen), to know whether any was left.
        limit = cap - len(out) + len(seen) + 1
        found = engine.included(conn, frontier, inc, False, limit, ctl.access) + engine.included(
            conn, frontier, rev, True, limit, ctl.access
        )
        new = []
        for h in found:
            if h.pk not in seen:
                if len(out) == cap:
                    return out, True
                seen.add(h.pk)
                out.append(h)
                new.append(h)
        if not new:
            break
        frontier = new
    return out, False


def _entry(
    base_url: str, res_type: str, res_id: str, body: str, mode: str, ctl: _Controls
) -> dict[str, Any]:
    resource = orjson.loads(body)
    if ctl.summary or ctl.elements:
        resource = _subset(resource, ctl)
    return {
        "fullUrl": f"{base_url}/{res_type}/{res_id}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _subset(resource: dict[str, Any], ctl: _Controls) -> dict[str, Any]:
    """_summary / _elements: http://hl7.org/fhir/R4/search.html#summary , #elements ."""
    rt = resource.get("resourceType", "")
    if ctl.summary == "data":
        out = {k: v for k, v in resource.items() if k != "text"}
    elif ctl.summary == "text":
        keep = {"resourceType", "id", "meta", "text", *registry.required_elements(rt)}
        out = {k: v for k, v in resource.items() if k in keep}
    elif ctl.summary == "true":
        keep = {"resourceType", "id", "meta", *registry.summary_elements(rt)}
        out = {k: v for k, v in resource.items() if _kept(k, keep)}
    else:
        keep = {"resourceType", "id", "meta", *(ctl.elements or ())}
        keep |= set(registry.required_elements(rt))
        out = {k: v for k, v in resource.items() if _kept(k, keep)}
    if ctl.summary != "data":
        meta = dict(out.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), SUBSETTED]
        out["meta"] = meta
    return out


def _kept(key: str, keep: set[str]) -> bool:
    """Whether JSON ``key`` is one of the elements ``keep`` (``_birthDate`` is birthDate's
    extension part; ``valueQuantity`` is the choice element ``value``)."""
    key = key.removeprefix("_")
    if key in keep:
        return True
    return any(key.startswith(n) and key[len(n) : len(n) + 1].isupper() for n in keep)


def _outcome_entry(unknown: list[str]) -> dict[str, Any]:
    issue = {
        "severity": "warning",
        "code": "not-supported",
        "diagnostics": "parameters ignored: " + ", ".join(sorted(set(unknown))),
        "expression": sorted(set(unknown)),
    }
    return {
        "resource": {"resourceType": "OperationOutcome", "issue": [issue]},
        "search": {"mode": "outcome"},
    }


def _included_limit_entry(cap: int) -> dict[str, Any]:
    issue = {
        "severity": "warning",
        "code": "too-costly",
        "diagnostics": f"Only the first {cap} resources of _include/_revinclude are in this page "
        "(FHIRHUB_SEARCH_MAX_INCLUDED); ask for a smaller _count to get the rest",
        "expression": ["_include", "_revinclude"],
    }
    return {
        "resource": {"resourceType": "OperationOutcome", "issue": [issue]},
        "search": {"mode": "outcome"},
    }


def _keys(h: Hit) -> list[Any]:
    return list(h.keys)


def _sort_sig(keys: list[SortKey]) -> str:
    return ",".join(("-" if k.descending else "") + k.code for k in keys)


def _encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def _decode_cursor(value: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = orjson.loads(raw)
        if not isinstance(data, dict) or data.get("d") not in ("n", "p"):
            raise ValueError
        int(data["cut"])
        if not isinstance(data["k"], list):
            raise ValueError
        return data
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise bad_request(f"_cursor '{value}' is not a page of this server", "_cursor") from None


_TEXT_KEYS = ("string", "token", "uri", "reference", "_id")


def _cursor_fits(cur: dict[str, Any], sort: list[SortKey]) -> bool:
    """Are a cursor's values what a page of this sort holds (a made-up one reaches SQL)?"""

    def whole(v: Any) -> bool:
        return type(v) is int and -(2**63) <= v < 2**63

    def fits(v: Any, ptype: str) -> bool:
        if ptype in _TEXT_KEYS:
            return isinstance(v, str) and len(v) <= 4096 and "\x00" not in v
        if ptype in ("date", "_lastUpdated"):
            return whole(v)
        return whole(v) or (type(v) is float and abs(v) <= 1e308)

    keys, cut = cur.get("k"), cur.get("cut")
    return (
        whole(cut)
        and isinstance(keys, list)
        and len(keys) == len(sort) + 1
        and whole(keys[-1])
        and all(fits(v, k.ptype) for v, k in zip(keys, sort, strict=False))
    )


def _cursor_param(cur: dict[str, Any] | None) -> list[tuple[str, str]]:
    return [("_cursor", _encode_cursor(cur))] if cur else []


def _url(base: str, params: list[tuple[str, str]]) -> str:
    return f"{base}?{urlencode(params)}" if params else base
