"""FHIR JSON that reads back as it was written.

orjson is fast but reads ``1.50`` as the float 1.5, losing the precision FHIR gives decimals.
Bodies that hold such a number (a trailing zero, an exponent, more digits than a double keeps,
or an integer past 64 bits) are read by the standard library into :class:`FhirDecimal`, a float
that remembers its text and is written back unchanged.

What is parsed is also held to what can be stored and validated, the same on every database:
no NUL character (PostgreSQL cannot keep ``\\u0000`` in JSONB), no nesting deeper than
:data:`MAX_DEPTH` (validation recurses per level), and no ``contained`` resource that contains
resources itself (dom-2). Each is a 400 naming the element.
"""

from __future__ import annotations

import json as _stdjson
import re
from typing import Any

import orjson

from fhirhub.errors import FhirError, Issue, bad_request

# A number whose shortest float form might differ from its text: a trailing zero, an
# exponent, a fraction of 15 digits or more (a double keeps 15 for sure), an integer of 18 or
# more. Only where a JSON value starts (after ':', ',' or '['; a document that is a bare number
# is checked apart): inside strings, ids such as "8eb6" were taken for exponents, and times
# such as "00:01.678000Z" for a trailing zero (a number ends before ',', ']' or '}'), which
# sent most bodies to the slow parser. (A string holding ":1e5" still does: slower, never
# wrong.) The leading digit is matched once, outside the alternatives: a third of the time.
_LOSSY_NUMBER = re.compile(
    rb"[:,\[]\s*-?\d"
    rb"(?:\d*\.\d*0(?=\s*[,\]}])|\d*(?:\.\d+)?[eE]|(?=\d*\.)[\d.]{15,}|\d{17,})"
)
_BARE_NUMBER = re.compile(rb"\s*[-\d]")
# Nesting of objects and arrays. FHIR resources run to about 20 (Questionnaire items, nested
# extensions); validating 400 levels overflowed Python's stack.
MAX_DEPTH = 100
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 not itself escaped


class FhirDecimal(float):
    """A decimal read from JSON, written back with its original digits."""

    text: str

    def __new__(cls, text: str) -> FhirDecimal:
        value = super().__new__(cls, text)
        value.text = text
        return value


def _default(obj: Any) -> Any:
    if isinstance(obj, FhirDecimal):
        return orjson.Fragment(obj.text)
    if isinstance(obj, int):  # ints beyond 64 bits
        return orjson.Fragment(str(obj))
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _int_or_decimal(text: str) -> int | FhirDecimal:
    value = int(text)
    return value if -(2**63) <= value < 2**64 else FhirDecimal(text)


def loads(body: bytes | str) -> Any:
    """Parse JSON, keeping decimals exact. Raises a 400 FhirError on malformed input, a NUL
    character, nesting deeper than :data:`MAX_DEPTH`, or a contained resource that contains
    others."""
    raw = body.encode() if isinstance(body, str) else body
    deep = raw.count(b"{") + raw.count(b"[") > MAX_DEPTH
    try:
        if _LOSSY_NUMBER.search(raw) is None and _BARE_NUMBER.match(raw) is None:
            value = orjson.loads(raw)
        else:  # recursive: past about 1,000 levels a RecursionError, refused below
            value = _stdjson.loads(
                raw,
                parse_float=FhirDecimal,
                parse_int=_int_or_decimal,
                parse_constant=_reject_constant,
            )
    except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        message = str(exc) if not isinstance(exc, RecursionError) else "nested too deep"
        raise bad_request(f"The body is not valid JSON: {message}", code="structure") from None
    if deep and _depth_exceeds(value, MAX_DEPTH):
        raise _too_deep()
    issues: list[Issue] = []
    if _escaped_nul(raw):
        issues += _nul_issues(value)
    if b'"contained"' in raw:
        issues += _nested_contained(value)
    if issues:
        raise FhirError(400, issues)
    return value


def has_nul(raw: bytes) -> bool:
    """Does this JSON (or other) text hold a NUL character, raw or as ``\\u0000``?"""
    return b"\x00" in raw or _escaped_nul(raw)


def _escaped_nul(raw: bytes) -> bool:
    # The substring test first: the regex tries every position (30 us per resource of a
    # transaction Bundle), the test costs next to nothing when there is no "\u0000" at all.
    return b"\\u0000" in raw and _NUL_ESCAPE.search(raw) is not None


def _too_deep() -> FhirError:
    return bad_request(f"The body is nested more than {MAX_DEPTH} levels deep", code="too-costly")


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                push((child, depth + 1))
    return False


def _root(value: Any) -> str:
    rtype = value.get("resourceType") if isinstance(value, dict) else None
    return rtype if isinstance(rtype, str) and rtype.isalpha() else "$"


def _nul_issues(value: Any) -> list[Issue]:
    issues: list[Issue] = []
    stack: list[tuple[Any, str]] = [(value, _root(value))]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                issues.append(Issue("invalid", "NUL characters are not allowed", (path,)))
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    issues.append(Issue("invalid", "NUL characters are not allowed", (path,)))
                else:
                    stack.append((child, f"{path}.{key}"))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(node))
    return sorted(issues, key=lambda i: i.expression)


def _nested_contained(value: Any) -> list[Issue]:
    """dom-2: a contained resource SHALL NOT contain additional contained resources."""
    issues: list[Issue] = []
    stack: list[tuple[Any, str, bool]] = [(value, _root(value), False)]
    while stack:
        node, path, inside = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key == "contained" and inside and "resourceType" in node:
                    issues.append(
                        Issue(
                            "invalid",
                            "dom-2: a contained resource cannot contain resources",
                            (f"{path}.contained",),
                        )
                    )
                    continue
                nested = inside or (key == "contained" and "resourceType" in node)
                stack.append((child, f"{path}.{key}", nested))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{i}]", inside) for i, child in enumerate(node))
    return sorted(issues, key=lambda i: i.expression)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def dumps(obj: Any, *, pretty: bool = False, sort_keys: bool = False) -> bytes:
    option = orjson.OPT_PASSTHROUGH_SUBCLASS
    if pretty:
        option |= orjson.OPT_INDENT_2
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    return orjson.dumps(obj, default=_default, option=option)


def dumps_str(obj: Any) -> str:
    return dumps(obj).decode()
