"""Index rows of a resource: the values of its search parameters, ready to insert.

https://hl7.org/fhir/R4/searchparameter.html . Each parameter's FHIRPath expression was compiled
by ``scripts/build_search_params.py`` into *typed paths*: JSON keys to walk (choice types already
expanded to ``valueQuantity``, ``onsetDateTime``...), an optional filter per step
(``where(resolve() is Patient)``, ``where(system='email')``, ``[0]``) and the FHIR type reached.
Walking those is a handful of dict lookups, so indexing stays far below 100 µs per resource; the
few expressions the compiler cannot handle are evaluated with fhirpathpy.

``index_rows`` returns, per index table, the rows without ``resource_pk``/``res_type`` (the write
path adds those).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from fhirhub.search import registry
from fhirhub.search.element_values import (
    MAX_TEXT,
    dates_of,
    nonempty_str,
    quantities_of,
    references_of,
    strings_of,
    tokens_of,
)
from fhirhub.search.values import MAX_US, MIN_US, normalise, parse_reference

Row = dict[str, Any]
Rows = dict[str, list[Row]]
Walker = Callable[[dict[str, Any]], list[Any]]


# --- walking compiled paths ------------------------------------------------------------------


def _make_walker(steps: list[list[Any]]) -> Walker:
    compiled = [(key, flt) for key, flt in steps]

    def walk(node: dict[str, Any]) -> list[Any]:
        cur: list[Any] = [node]
        for key, flt in compiled:
            nxt: list[Any] = []
            for n in cur:
                if type(n) is not dict:
                    continue
                v = n.get(key)
                if v is None:
                    continue
                if type(v) is list:
                    nxt.extend(v)
                else:
                    nxt.append(v)
            if flt is not None and nxt:
                kind = flt[0]
                if kind == "index":
                    nxt = nxt[flt[1] : flt[1] + 1]
                elif kind == "eq":
                    fk, fv = flt[1], flt[2]
                    nxt = [x for x in nxt if type(x) is dict and x.get(fk) == fv]
                elif kind == "reftype":
                    nxt = [x for x in nxt if _ref_type(x) == flt[1]]
            if not nxt:
                return nxt
            cur = nxt
        return cur

    return walk


def _ref_type(ref: Any) -> str | None:
    if type(ref) is not dict:
        return None
    r = ref.get("reference")
    if isinstance(r, str):
        t = parse_reference(r)[0]
        if t:
            return t
    t2 = ref.get("type")
    return t2 if isinstance(t2, str) else None


# --- per parameter type: rows for one value ---------------------------------------------------


def _extract(ptype: str, name: str, vtype: str, values: Iterable[Any], out: Rows) -> None:
    if ptype == "token":
        rows = out.setdefault("search_token", [])
        for v in values:
            for system, code, text in tokens_of(vtype, v):
                rows.append({"param": name, "system": system, "code": code, "text": text})
            if vtype == "Identifier" and type(v) is dict and nonempty_str(v.get("value")):
                t = v.get("type")
                for c in (t.get("coding") or ()) if type(t) is dict else ():
                    if type(c) is dict:
                        rows.append(
                            {
                                "param": name + ":of-type",
                                "system": f"{c.get('system') or ''}|{c.get('code') or ''}",
                                "code": v["value"],
                                "text": None,
                            }
                        )
    elif ptype == "string":
        rows = out.setdefault("search_string", [])
        for v in values:
            for s in strings_of(vtype, v):
                rows.append({"param": name, "value": normalise(s)[:MAX_TEXT], "exact": s})
    elif ptype == "date":
        rows = out.setdefault("search_date", [])
        for v in values:
            for lo, hi in dates_of(vtype, v):
                span = hi - lo if lo != MIN_US and hi != MAX_US else None
                rows.append({"param": name, "low": lo, "high": hi, "span": span})
    elif ptype == "reference":
        rows = out.setdefault("search_reference", [])
        for v in values:
            refs = references_of(vtype, v)
            for t, i, url in refs:
                rows.append({"param": name, "target_type": t, "target_id": i, "url": url})
            if not refs and type(v) is dict:  # present (identifier only, contained): for :missing
                rows.append({"param": name, "target_type": None, "target_id": None, "url": None})
            if vtype == "Reference" and type(v) is dict and type(v.get("identifier")) is dict:
                for system, code, text in tokens_of("Identifier", v["identifier"]):
                    out.setdefault("search_token", []).append(
                        {
                            "param": name + ":identifier",
                            "system": system,
                            "code": code,
                            "text": text,
                        }
                    )
    elif ptype == "quantity":
        rows = out.setdefault("search_quantity", [])
        for v in values:
            for qlo, qhi, system, code, unit in quantities_of(vtype, v):
                rows.append(
                    {
                        "param": name,
                        "low": qlo,
                        "high": qhi,
                        "system": system,
                        "code": code,
                        "unit": unit,
                    }
                )
    elif ptype == "number":
        rows = out.setdefault("search_number", [])
        for v in values:
            for nlo, nhi, *_ in quantities_of(vtype, v):
                rows.append({"param": name, "low": nlo, "high": nhi})
    elif ptype == "uri":
        rows = out.setdefault("search_uri", [])
        for v in values:
            if isinstance(v, str) and v:
                rows.append({"param": name, "value": v[:MAX_TEXT]})


# --- composites ------------------------------------------------------------------------------


def _component_keys(ctype: str, vtype: str, v: Any) -> list[tuple[Any, ...]]:
    """A component's values as (system, code, low, high, dlow, dhigh)."""
    if ctype == "token":
        return [(s, c, None, None, None, None) for s, c, _ in tokens_of(vtype, v) if c]
    if ctype == "string":
        return [
            (None, normalise(s)[:MAX_TEXT], None, None, None, None) for s in strings_of(vtype, v)
        ]
    if ctype == "reference":
        return [
            (None, f"{t}/{i}", None, None, None, None) for t, i, _ in references_of(vtype, v) if t
        ]
    if ctype in ("quantity", "number"):
        return [(s, c, lo, hi, None, None) for lo, hi, s, c, _u in quantities_of(vtype, v)]
    if ctype == "date":
        return [(None, None, None, None, lo, hi) for lo, hi in dates_of(vtype, v)]
    if ctype == "uri":
        return [(None, v, None, None, None, None)] if isinstance(v, str) else []
    return []


def _composite_extractor(name: str, p: dict[str, Any]) -> Callable[[dict[str, Any], Rows], None]:
    roots = [_make_walker(x["steps"]) for x in p.get("paths", [])]
    comps = [
        (c["type"], [(_make_walker(x["steps"]), x["type"]) for x in c["paths"]])
        for c in p["components"]
    ]

    def extract(resource: dict[str, Any], out: Rows) -> None:
        rows = out.setdefault("search_composite", [])
        for root in roots:
            for node in root(resource):
                keys: list[list[tuple[Any, ...]]] = []
                for ctype, walkers in comps:
                    ks = []
                    for w, vtype in walkers:
                        for v in w(node):
                            ks.extend(_component_keys(ctype, vtype, v))
                    keys.append(ks)
                for a in keys[0]:
                    for b in keys[1]:
                        rows.append(
                            {
                                "param": name,
                                "c1_system": a[0],
                                "c1_code": a[1],
                                "c2_system": b[0],
                                "c2_code": b[1],
                                "c2_low": b[2],
                                "c2_high": b[3],
                                "c2_dlow": b[4],
                                "c2_dhigh": b[5],
                            }
                        )

    return extract


# --- per resource type: all extractors --------------------------------------------------------


def _path_extractor(
    name: str, ptype: str, paths: list[dict[str, Any]]
) -> Callable[[dict[str, Any], Rows], None]:
    walkers = []
    for x in paths:
        if x["type"] == "deceased":
            field = x["field"]

            def deceased(resource: dict[str, Any], out: Rows, field: str = field) -> None:
                present = any(k.startswith(field) and k != field for k in resource)
                value = present and resource.get(field + "Boolean") is not False
                _extract(ptype, name, "boolean", [value], out)

            return deceased
        walkers.append((_make_walker(x["steps"]), x["type"]))

    def extract(resource: dict[str, Any], out: Rows) -> None:
        for walk, vtype in walkers:
            values = walk(resource)
            if values:
                _extract(ptype, name, vtype, values, out)

    return extract


def _fhirpath_extractor(
    name: str, ptype: str, expression: str
) -> Callable[[dict[str, Any], Rows], None]:
    import fhirpathpy  # only for custom parameters and expressions the compiler leaves
    from fhirpathpy.models import models

    compiled = fhirpathpy.compile(expression, models["r4"])

    def extract(resource: dict[str, Any], out: Rows) -> None:
        for v in compiled(resource, None):
            if type(v).__name__ == "Decimal":
                v = float(v)
            elif type(v).__name__.startswith("FP_"):
                v = str(v)
            _extract(ptype, name, guess_type(ptype, v), [v], out)

    return extract


def guess_type(ptype: str, v: Any) -> str:
    """The FHIR type of a value fhirpathpy returned, from its shape."""
    if isinstance(v, bool):
        return "boolean"
    if not isinstance(v, dict):
        return "string"
    if "coding" in v or ("text" in v and ptype == "token" and "value" not in v):
        return "CodeableConcept"
    if "reference" in v:
        return "Reference"
    if "start" in v or "end" in v:
        return "Period"
    if "low" in v or "high" in v:
        return "Range"
    if "family" in v or "given" in v:
        return "HumanName"
    if "line" in v or "city" in v:
        return "Address"
    if ptype == "token" and "code" in v:
        return "Coding"
    if ptype == "token" and "value" in v:
        return "ContactPoint" if v.get("system") in ("phone", "email", "fax") else "Identifier"
    if "resourceType" in v:
        return "Resource"
    return "Quantity"


Extractor = Callable[[dict[str, Any], Rows], None]


@cache
def extractors(
    res_type: str, skip: frozenset[str] = frozenset()
) -> tuple[tuple[Extractor, ...], dict[str, tuple[Extractor, ...]]]:
    """(extractors to run on every resource, extractors by the top-level key they read), of
    every parameter but those in ``skip``.

    Each compiled path gets an extractor of its own, filed under its first key, so a resource
    only pays for the elements it has.
    """
    always: list[Extractor] = []
    by_key: dict[str, list[Extractor]] = {}

    def file(steps: list[list[Any]], ex: Extractor) -> None:
        if steps:
            by_key.setdefault(steps[0][0], []).append(ex)
        else:
            always.append(ex)

    for name, p in registry.params_of(res_type).items():
        if "unsupported" in p or "alias" in p or name in registry.COLUMN_PARAMS or name in skip:
            continue
        if p["type"] == "composite":
            for root in p.get("paths", []):
                file(root["steps"], _composite_extractor(name, {**p, "paths": [root]}))
            continue
        for path in p.get("paths", []):
            ex = _path_extractor(name, p["type"], [path])
            if path["type"] == "deceased":
                always.append(ex)
            else:
                file(path["steps"], ex)
        if p.get("fhirpath"):
            always.append(_fhirpath_extractor(name, p["type"], p["fhirpath"]))
    return tuple(always), {k: tuple(v) for k, v in by_key.items()}


def index_rows(resource: dict[str, Any], skip: frozenset[str] = frozenset()) -> Rows:
    """Per index table, the rows (``param`` and value columns) for ``resource``; none for the
    parameters in ``skip``."""
    out: Rows = {}
    always, by_key = extractors(resource["resourceType"], skip)
    for extract in always:
        extract(resource, out)
    for key in resource:
        for extract in by_key.get(key, ()):
            extract(resource, out)
    for table, rows in list(out.items()):
        if not rows:
            del out[table]
        elif len(rows) > 1:
            seen: dict[tuple[Any, ...], Row] = {}
            for r in rows:
                seen.setdefault(tuple(r.values()), r)
            if len(seen) != len(rows):
                out[table] = list(seen.values())
    return out


# --- rows another resource has already -------------------------------------------------------


@cache
def borrowable(source: str, target: str, keys: frozenset[str]) -> frozenset[str]:
    """The parameters of ``target`` that read only its elements ``keys`` and are defined as
    the ``source`` type's parameters of the same name (same type, same compiled paths): for a
    ``target`` resource whose ``keys`` elements are those of a ``source`` resource, their rows
    are the source's rows of those parameters."""
    theirs = registry.params_of(source)
    out = set()
    for name, p in registry.params_of(target).items():
        q = theirs.get(name)
        if (
            q is None
            or any(x in p or x in q for x in ("unsupported", "alias", "fhirpath"))
            or name in registry.COLUMN_PARAMS
            or p["type"] == "composite"
            or not p.get("paths")
            or (q["type"], q.get("paths")) != (p["type"], p["paths"])
            or any(x["type"] == "deceased" for x in p["paths"])
            or any(not x["steps"] or x["steps"][0][0] not in keys for x in p["paths"])
        ):
            continue
        out.add(name)
    return frozenset(out)


def index_rows_borrowing(
    resource: dict[str, Any], source: str, source_rows: Rows, keys: frozenset[str]
) -> Rows:
    """:func:`index_rows` of ``resource`` whose elements ``keys`` are those (the same values)
    of a resource of type ``source`` whose rows are ``source_rows``: the rows of the
    :func:`borrowable` parameters are taken from those, the rest extracted (a Person made of
    one Patient record indexes only its identifiers and links)."""
    shared = borrowable(source, resource["resourceType"], keys)
    out = index_rows(resource, shared)
    for table, rows in source_rows.items():
        taken = [r for r in rows if r["param"].partition(":")[0] in shared]
        if taken:
            out.setdefault(table, []).extend(taken)
    return out
