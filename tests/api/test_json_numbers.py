"""``loads`` keeps every number's digits, whichever parser it picks (orjson or the standard
library): JSON written with numbers of every shape, strings that look like numbers (ids such as
"8eb6"), and any whitespace between tokens, reads back and writes out with the same numbers."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fhirhub.model.json import dumps, loads

number = st.one_of(
    st.integers(-(10**25), 10**25).map(str),
    st.from_regex(r"-?(0|[1-9][0-9]{0,5})\.[0-9]{1,20}", fullmatch=True),  # trailing zeros too
    st.from_regex(r"-?[1-9](\.[0-9]{1,3})?[eE][+-]?[0-9]{1,2}", fullmatch=True),
)
string = st.one_of(
    st.text(alphabet="0123456789abcdefE.:,[- ", max_size=20),
    st.uuids().map(str),
)
space = st.sampled_from(["", " ", "\n  ", "\t"])


@st.composite
def document(draw: st.DrawFn, depth: int = 0) -> tuple[str, list[str]]:
    """JSON text and the numbers in it, in order."""
    kind = draw(st.sampled_from(["object", "array"] if depth < 3 else ["number", "string"]))
    if depth > 0 and draw(st.booleans()):
        kind = draw(st.sampled_from(["number", "string"]))
    if kind == "number":
        n = draw(number)
        return n, [n]
    if kind == "string":
        return json.dumps(draw(string)), []
    parts, numbers = [], []
    for i in range(draw(st.integers(0, 4))):
        text, found = draw(document(depth + 1))
        if kind == "object":  # keys of one object differ
            key = json.dumps(f"{i}{draw(string)}")
            text = f"{key}{draw(space)}:{draw(space)}{text}"
        parts.append(text)
        numbers += found
    sep = f"{draw(space)},{draw(space)}"
    open_, close = ("{", "}") if kind == "object" else ("[", "]")
    return f"{open_}{draw(space)}{sep.join(parts)}{draw(space)}{close}", numbers


def numbers_in(value: Any) -> list[str]:
    """The numbers of a parsed value, as ``dumps`` writes them, in document order."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out.append(dumps(v).decode())

    walk(value)
    return out


@settings(max_examples=400, deadline=None)
@given(document())
def test_every_number_keeps_its_digits(doc: tuple[str, list[str]]) -> None:
    text, numbers = doc
    assert numbers_in(loads(text)) == numbers


def test_an_id_with_a_digit_before_e_is_not_a_number() -> None:
    body = b'{"resourceType":"Patient","id":"59301194-8eb6-4bcc-a90f-5fea610fda67"}'
    assert loads(body)["id"] == "59301194-8eb6-4bcc-a90f-5fea610fda67"


def test_a_fraction_with_more_digits_than_a_double_keeps_its_digits() -> None:
    # 20 significant digits, 14 of them decimals: under the old rule (15 decimals or more) it
    # went to orjson and came back as 123456.123456789
    for text in ("123456.12345678901234", "-98765.4321098765432", "0.12345678901234567"):
        assert dumps(loads(f'{{"valueDecimal":{text}}}'.encode())) == (
            f'{{"valueDecimal":{text}}}'.encode()
        )


def test_times_with_trailing_zeros_take_the_fast_parser() -> None:
    """A stored body's ``meta.lastUpdated`` ("...00:01.678000Z") is a string, not a number
    ending in zero: the body needs no exact-decimal parsing."""
    from fhirhub.model.json import _BARE_NUMBER, _LOSSY_NUMBER

    body = b'{"meta": {"lastUpdated": "2026-01-01T00:00:01.678000Z"}, "birthDate": "1969-01-30"}'
    assert _LOSSY_NUMBER.search(body) is None and _BARE_NUMBER.match(body) is None
    for lossy in (b"[1.50]", b'{"a": 1.50 }', b'{"a":1e5}', b"[12345678901234567890]", b" 1.50"):
        assert _LOSSY_NUMBER.search(lossy) is not None or _BARE_NUMBER.match(lossy) is not None
        assert dumps(loads(lossy)).decode().replace(" ", "") == lossy.decode().replace(" ", "")
