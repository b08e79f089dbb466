"""The condition one search value puts on the index rows of its parameter, for the types
without prefixes: string, token, reference, uri and composite (date, number and quantity:
:mod:`fhirhub.search.prefixes`).

https://hl7.org/fhir/R4/search.html#string , #token , #reference , #uri , #composite
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select

from fhirhub.errors import bad_request
from fhirhub.search.prefixes import date_clause, number_clause, quantity_clause
from fhirhub.search.tables import param_scope, search_composite, search_token
from fhirhub.search.values import normalise, parse_reference, split_unescaped, split_values


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def string_clause(t: Any, modifier: str, v: str) -> ColumnElement[bool]:
    if modifier == "exact":
        return and_(t.c.value == normalise(v)[:512], t.c.exact == v)
    n = _like_escape(normalise(v))
    if modifier == "contains":
        return t.c.value.like(f"%{n}%", escape="\\")
    return t.c.value.like(f"{n}%", escape="\\")


def token_text_clause(t: Any, v: str) -> ColumnElement[bool]:
    n = _like_escape(normalise(v))
    return or_(t.c.text.like(f"{n}%", escape="\\"), t.c.text.like(f"% {n}%", escape="\\"))


def token_clause(t: Any, v: str, name: str) -> ColumnElement[bool]:
    if "|" not in v.replace("\\|", ""):
        if v == "":
            raise bad_request(f"empty token value in '{name}'", name)
        return t.c.code == v.replace("\\|", "|")
    system, code = split_unescaped(v, "|")[:2]
    if system == "":
        return and_(t.c.code == code, t.c.system.is_(None))
    if code == "":
        return t.c.system == system
    return and_(t.c.code == code, t.c.system == system)


def token_any(t: Any, values: list[str], name: str) -> ColumnElement[bool]:
    return or_(*(token_clause(t, v, name) for v in values))


def of_type_pks(res_type: str | None, code: str, value: str, name: str) -> Select:
    """Resource pks matching ``code:of-type=system|code|value`` (identifier type and value)."""
    t = search_token
    alts = []
    for v in split_values(value):
        parts = split_unescaped(v, "|")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise bad_request(f"':of-type' takes system|code|value, not '{v}'", name)
        alts.append(and_(t.c.system == f"{parts[0]}|{parts[1]}", t.c.code == parts[2]))
    return select(t.c.resource_pk).where(*param_scope(t, res_type, code, ":of-type"), or_(*alts))


def reference_clause(
    t: Any, p: dict[str, Any], modifier: str, v: str, name: str, base_url: str
) -> ColumnElement[bool]:
    """``base_url``: our own base, stripped from absolute references to resources here."""
    if p.get("target") == [] or not v:
        raise bad_request(f"empty reference in '{name}'", name)
    ref = v
    if base_url and ref.startswith(base_url + "/"):
        ref = ref[len(base_url) + 1 :]
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


def uri_clause(t: Any, modifier: str, v: str) -> ColumnElement[bool]:
    if modifier == "below":
        return t.c.value.like(_like_escape(v) + "%", escape="\\")
    if modifier == "above":
        cuts = [m.start() for m in re.finditer("/", v)] + [len(v)]
        prefixes = {v[:i] for i in cuts if i} | {v[: i + 1] for i in cuts if i < len(v)}
        return t.c.value.in_(sorted(prefixes))
    return t.c.value == v


def composite_clause(p: dict[str, Any], v: str, name: str) -> ColumnElement[bool]:
    parts = split_unescaped(v, "$")
    comps = p["components"]
    if len(parts) != 2 or len(comps) != 2:
        raise bad_request(f"composite '{name}' takes two values joined by '$'", name)
    t = search_composite
    first, second = parts
    c1type, c2type = comps[0]["type"], comps[1]["type"]
    if c1type == "token":
        a = token_clause(_Cols(t, "c1_system", "c1_code"), first, name)
    elif c1type == "reference":
        a = t.c.c1_code == first
    else:
        a = t.c.c1_code == normalise(first)
    if c2type == "token":
        b = token_clause(_Cols(t, "c2_system", "c2_code"), second, name)
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


__all__ = [
    "composite_clause",
    "of_type_pks",
    "reference_clause",
    "string_clause",
    "token_any",
    "token_clause",
    "token_text_clause",
    "uri_clause",
]
