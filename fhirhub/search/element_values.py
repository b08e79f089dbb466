"""The values a FHIR element gives a search parameter, per parameter type and FHIR type:
tokens, strings, dates, quantities and references (``fhirhub.search.indexing`` makes index rows
of them).

https://hl7.org/fhir/R4/search.html#table
"""

from __future__ import annotations

from typing import Any

from fhirhub.search.values import MAX_US, MIN_US, date_range, normalise, parse_reference

BIG = 1e300
MAX_TEXT = 512  # longest indexed value: keeps PostgreSQL b-tree entries small


def nonempty_str(v: Any) -> str | None:
    """``v`` if it is a non-empty string, else None."""
    return v if isinstance(v, str) and v != "" else None


_s = nonempty_str  # short, for the many uses below


def _txt(v: Any) -> str | None:
    return normalise(v)[:MAX_TEXT] if isinstance(v, str) and v else None


def tokens_of(vtype: str, v: Any) -> list[tuple[str | None, str | None, str | None]]:
    """(system, code, normalised text) triples of a value searched as a token."""
    if vtype == "CodeableConcept":
        if type(v) is not dict:
            return []
        text = _txt(v.get("text"))
        out = [
            (_s(c.get("system")), _s(c.get("code")), text or _txt(c.get("display")))
            for c in v.get("coding") or ()
            if type(c) is dict
        ]
        if text and not out:
            out.append((None, None, text))
        return out
    if vtype == "Coding":
        if type(v) is not dict:
            return []
        return [(_s(v.get("system")), _s(v.get("code")), _txt(v.get("display")))]
    if vtype == "Identifier":
        if type(v) is not dict:
            return []
        t = v.get("type")
        return [(_s(v.get("system")), _s(v.get("value")), _txt(t.get("text")) if t else None)]
    if vtype == "ContactPoint":
        if type(v) is not dict:
            return []
        return [(_s(v.get("system")), _s(v.get("value")), None)]
    if vtype == "boolean":
        return [(None, "true" if v else "false", None)] if isinstance(v, bool) else []
    if isinstance(v, str) and v:
        return [(None, v[:MAX_TEXT], None)]
    if type(v) is dict and vtype == "Reference":  # a token over a Reference: its identifier
        return tokens_of("Identifier", v.get("identifier"))
    return []


def strings_of(vtype: str, v: Any) -> list[str]:
    if isinstance(v, str):
        return [v] if v else []
    if type(v) is not dict:
        return []
    if vtype == "HumanName":
        parts: list[str] = []
        for k in ("family", "text"):
            if isinstance(v.get(k), str):
                parts.append(v[k])
        for k in ("given", "prefix", "suffix"):
            parts.extend(x for x in v.get(k) or () if isinstance(x, str))
        return parts
    if vtype == "Address":
        parts = [x for x in v.get("line") or () if isinstance(x, str)]
        for k in ("city", "district", "state", "postalCode", "country", "text"):
            if isinstance(v.get(k), str):
                parts.append(v[k])
        return parts
    if vtype == "CodeableConcept":
        return [v["text"]] if isinstance(v.get("text"), str) else []
    return []


def dates_of(vtype: str, v: Any) -> list[tuple[int, int]]:
    if isinstance(v, str):
        r = date_range(v)
        return [r] if r else []
    if type(v) is not dict:
        return []
    if vtype == "Period":
        s, e = v.get("start"), v.get("end")
        lo = date_range(s) if isinstance(s, str) else None
        hi = date_range(e) if isinstance(e, str) else None
        if lo is None and hi is None:
            return []
        return [(lo[0] if lo else MIN_US, hi[1] if hi else MAX_US)]
    if vtype == "Timing":
        ranges = [r for e in v.get("event") or () if isinstance(e, str) and (r := date_range(e))]
        rep = v.get("repeat")
        if type(rep) is dict and type(rep.get("boundsPeriod")) is dict:
            ranges.extend(dates_of("Period", rep["boundsPeriod"]))
        if not ranges:
            return []
        return [(min(r[0] for r in ranges), max(r[1] for r in ranges))]
    return []


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def quantities_of(
    vtype: str, v: Any
) -> list[tuple[float, float, str | None, str | None, str | None]]:
    """(low, high, system, code, unit) of a quantity-like value."""
    if type(v) is not dict:
        n = _num(v)
        return [(n, n, None, None, None)] if n is not None else []
    if vtype == "Range":
        lo, hi = v.get("low") or {}, v.get("high") or {}
        a, b = _num(lo.get("value")), _num(hi.get("value"))
        if a is None and b is None:
            return []
        ref = lo if a is not None else hi
        return [
            (
                a if a is not None else -BIG,
                b if b is not None else BIG,
                _s(ref.get("system")),
                _s(ref.get("code")),
                _s(ref.get("unit")),
            )
        ]
    n = _num(v.get("value"))
    if n is None:
        return []
    if vtype == "Money":
        return [(n, n, "urn:iso:std:iso:4217", _s(v.get("currency")), None)]
    return [(n, n, _s(v.get("system")), _s(v.get("code")), _s(v.get("unit")))]


def references_of(vtype: str, v: Any) -> list[tuple[str | None, str | None, str | None]]:
    """(target type, target id, url) of a reference-like value."""
    if vtype == "Resource":
        if type(v) is dict and isinstance(v.get("resourceType"), str) and _s(v.get("id")):
            return [(v["resourceType"], v["id"], None)]
        return []
    if isinstance(v, str):  # canonical, uri
        url = v.split("|", 1)[0]
        t, i, _ = parse_reference(url)
        return [(t, i, url[:MAX_TEXT])]
    if type(v) is not dict:
        return []
    ref = v.get("reference")
    if not isinstance(ref, str) or not ref or ref.startswith("#"):
        return []
    rt, rid, rurl = parse_reference(ref)
    if rt is None and isinstance(v.get("type"), str) and "/" not in ref and ":" not in ref:
        rt, rid, rurl = v["type"], ref, None
    return [(rt, rid[:64] if rid else None, rurl[:MAX_TEXT] if rurl else None)]


__all__ = [
    "MAX_TEXT",
    "dates_of",
    "nonempty_str",
    "quantities_of",
    "references_of",
    "strings_of",
    "tokens_of",
]
