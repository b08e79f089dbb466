"""The HL7 v2 reader asks hl7apy field by field (memoised, and not at all for a value without a
separator or escape character); these tests hold it to reading exactly what hl7apy's whole
message tree (``parse_message``, the reader's first form, kept here as the oracle) reads, for
every golden message and for random segments full of separators, escapes and blanks."""

from __future__ import annotations

import string
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.rsud import hl7
from adapters.rsud.hl7 import decode, parse, split, unescape

GOLDEN = Path(__file__).with_name("golden_rsud")
VERSIONS = ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8"]


def _tree_fields(seg: Any, name: str, esc: str, seps: dict[str, str]) -> dict[int, list[list]]:
    fields: dict[int, list[list]] = {}
    for fld in seg.children:
        pos = hl7._position(fld.name)
        if pos is None:
            continue
        comps: list[list[str]] = []
        for cpos, component in hl7._children(fld):
            subs: list[str] = []
            for spos, subcomponent in hl7._children(component):
                subs.extend([""] * (spos - len(subs) - 1))
                subs.append(unescape(hl7._raw(subcomponent), esc, seps))
            comps.extend([[] for _ in range(cpos - len(comps) - 1)])
            if cpos <= len(comps):
                comps[cpos - 1] = comps[cpos - 1] + subs
            else:
                comps.append(subs)
        if name == "MSH" and pos in (1, 2):
            comps = [[fld.to_er7()]]
        fields.setdefault(pos, []).append(comps)
    return fields


def oracle(text: str) -> list[tuple[str, dict[int, list[list]]]]:
    """Segments and fields as hl7apy's message tree gives them (the text already normalised
    by ``parse``: separators declared, version known to hl7apy)."""
    sep = text[3]
    comp, rep, esc, sub = text[4:8]
    seps = {"F": sep, "S": comp, "T": sub, "R": rep, "E": esc}
    message = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    return [(str(s.name), _tree_fields(s, str(s.name), esc, seps)) for s in message.children]


def read(text: str) -> list[tuple[str, dict[int, list[list]]]]:
    parsed = parse(text)
    return [
        (s.name, {p: [r.components for r in reps] for p, reps in s.fields.items()})
        for s in parsed.segments
    ]


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.hl7")), ids=lambda p: p.stem)
def test_golden_messages_read_as_hl7apys_tree_reads_them(path: Path) -> None:
    text, _ = decode(path.read_bytes())
    for message in split(text):
        lines = message.split("\r")
        if any(not hl7._SEGMENT_NAME.match(line[:3]) for line in lines):
            continue  # refused before hl7apy is asked
        try:
            expected = oracle(message)
        except Exception:
            continue  # what hl7apy cannot read at all is refused by both
        assert read(message) == expected


_value_chars = string.ascii_letters + string.digits + " .-/:+&^~\\" + "éÑ"
values = st.text(alphabet=_value_chars, max_size=14)
fields = st.lists(values, min_size=0, max_size=4).map("~".join)


@settings(max_examples=150, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    segments=st.lists(
        st.tuples(
            st.sampled_from(["PID", "PV1", "OBX", "OBR", "NK1", "DG1", "RXA", "ZPI", "EVN"]),
            st.lists(fields, min_size=1, max_size=40),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_any_segment_reads_as_hl7apys_tree_reads_it(
    version: str, segments: list[tuple[str, list[str]]]
) -> None:
    msh = f"MSH|^~\\&|LIS|RSUD01|FHIRHUB|DINKES|20240105083000||ORU^R01|C1|P|{version}"
    lines = [msh] + ["|".join([name, *values]).strip() for name, values in segments]
    text = "\r".join(line for line in lines)
    assert _as_numbers(read(text)) == _as_numbers(oracle(text))


def _as_numbers(segments: Any) -> Any:
    """Every value that is a number, as that number: hl7apy's tree holds the value of a numeric
    field (SI, NM: PID-1, RXA-6) as a number, so ``007`` reads back as ``7`` and ``INF`` as
    ``Infinity``; the reader keeps the text as sent, which is what the mapping reads."""
    if isinstance(segments, str):
        try:
            number = Decimal(segments)  # as hl7apy reads NM: "INF" and "1e5" are numbers too
        except InvalidOperation:
            return segments
        return "NaN" if number.is_nan() else Decimal(0) if number.is_zero() else number
    if isinstance(segments, dict):
        return {k: _as_numbers(v) for k, v in segments.items()}
    if isinstance(segments, list | tuple):
        return type(segments)(_as_numbers(v) for v in segments)
    return segments


def test_a_numeric_fields_value_is_read_as_sent() -> None:
    text = "MSH|^~\\&|LIS|RSUD01|FHIRHUB|DINKES|20240105083000||VXU^V04|C1|P|2.5\rPID|00"
    assert dict(read(text))["PID"][1] == [[["00"]]]
    assert dict(oracle(text))["PID"][1] == [[["0"]]]
    assert _as_numbers(read(text)) == _as_numbers(oracle(text))
