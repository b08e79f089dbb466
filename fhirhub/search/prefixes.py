"""Prefixed values (``eq``, ``ne``, ``gt``, ``lt``, ``ge``, ``le``, ``sa``, ``eb``, ``ap``) of date,
number and quantity parameters against a stored range [low, high].

https://hl7.org/fhir/R4/search.html#prefix
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_

from fhirhub.errors import bad_request
from fhirhub.search.values import date_range, precision_range, split_unescaped

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


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
    except ValueError as exc:  # no date begins with letters: say what is wrong with the value
        if v[2:3].isdigit():  # a date after two letters: the letters are the mistake
            raise bad_request(
                f"{exc} in parameter '{name}'; prefixes: " + ", ".join(PREFIXES), name
            ) from None
        raise bad_request(
            f"'{v[:100]}' is not a date in parameter '{name}' ([prefix]YYYY[-MM[-DD[Thh:mm:ss"
            "+zz:zz]]], e.g. 1990-01-05 or ge2026-01; prefixes: " + ", ".join(PREFIXES) + ")",
            name,
        ) from None
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


# A search number beyond this has no double to compare with (1e400 reads as infinity).
MAX_NUMBER = 1e300


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise bad_request(f"malformed number '{text}' in parameter '{name}'", name) from None
    if not abs(value) <= MAX_NUMBER:  # also NaN and "infinity"
        raise bad_request(
            f"number '{text[:40]}' in parameter '{name}' is out of range (at most 1e300)", name
        )
    return value


def number_clause(low: Any, high: Any, v: str, name: str) -> ColumnElement[bool]:
    try:
        prefix, text = split_prefix(v)
    except ValueError:  # no number begins with letters
        raise bad_request(
            f"'{v[:100]}' is not a number in parameter '{name}' ([prefix]number, e.g. 5 or"
            " gt2.5; prefixes: " + ", ".join(PREFIXES) + ")",
            name,
        ) from None
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
    parts = split_unescaped(v, "|")
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


__all__ = ["PREFIXES", "date_clause", "number_clause", "quantity_clause", "split_prefix"]
