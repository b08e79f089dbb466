"""HL7 v2 ER7 bytes in, plain segments out: parsed by hl7apy, with the tolerance real feeds need.

- A UTF-8 byte-order mark is dropped; the character set is MSH-18's (UTF-8 when it names none,
  and Windows-1252 when the bytes are not UTF-8, as PC-based senders write them).
- LF and CRLF end segments as well as CR; blank lines are skipped.
- A batch (FHS/BHS ... BTS/FTS) is split into its messages; the envelope segments are dropped.
- Versions 2.3 to 2.8 are read (a sub-version hl7apy does not know, such as 2.7.1, as its
  nearest known version); Z-segments, fields past a segment's definition and empty fields are
  kept or skipped without complaint.
- Escape sequences (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ \\.br\\``) are resolved in every value.

The mapping (``hl7map``) reads :class:`Segment` objects, never hl7apy's tree: a field's values
by position (``PID-3``, repetition, component, subcomponent), 1-based as in the standard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Segment as HlSegment
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_field

from fhirhub.errors import FhirError, Issue

BOM = b"\xef\xbb\xbf"
# MSH-18 (HL7 table 0211) -> Python codec
CHARSETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/15": "iso8859-15",
    "ISO IR6": "ascii",
    "ISO IR100": "latin-1",
    "WINDOWS-1252": "cp1252",
    "CP1252": "cp1252",
}
VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.8.1", "2.8.2")
ENVELOPE = ("FHS", "BHS", "BTS", "FTS")
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")


class Hl7Error(FhirError):
    """A message that is not HL7 v2 this adapter can read (rejected: ``AR``)."""


def _reject(code: str, text: str, where: str = "MSH") -> Hl7Error:
    return Hl7Error(422, [Issue(code, text, (where,))])


@dataclass
class Rep:
    """One repetition of a field: components of subcomponents, resolved strings."""

    components: list[list[str]]

    def get(self, component: int = 1, sub: int = 1) -> str:
        if component > len(self.components):
            return ""
        subs = self.components[component - 1]
        return subs[sub - 1] if sub <= len(subs) else ""

    @property
    def empty(self) -> bool:
        return not any(s for c in self.components for s in c)


@dataclass
class Segment:
    name: str
    ordinal: int  # 1 for the first segment of this name in the message, 2 for the next, ...
    fields: dict[int, list[Rep]] = field(default_factory=dict)

    def reps(self, position: int) -> list[Rep]:
        return [r for r in self.fields.get(position, []) if not r.empty]

    def get(self, position: int, component: int = 1, sub: int = 1) -> str:
        reps = self.fields.get(position)
        return reps[0].get(component, sub) if reps else ""

    def where(self, position: int | None = None, component: int | None = None) -> str:
        """Its location as an ERR reports it: ``OBX[2]-5`` or ``PID[1]-3.1``."""
        out = f"{self.name}[{self.ordinal}]"
        if position is not None:
            out += f"-{position}"
            if component is not None:
                out += f".{component}"
        return out


@dataclass
class Parsed:
    """One message: its header values and its segments in order."""

    version: str
    message_type: str  # ADT, ORU, VXU
    trigger: str  # A01, R01, V04
    control_id: str
    sending_application: str
    sending_facility: str
    segments: list[Segment]
    encoding: str  # the codec the bytes were read with

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def after(self, segment: Segment) -> list[Segment]:
        """The segments that follow ``segment`` (this very one, not an equal one)."""
        at = next(i for i, s in enumerate(self.segments) if s is segment)
        return self.segments[at + 1 :]


# --- bytes to text -----------------------------------------------------------------------------


def _msh18(raw: bytes) -> str:
    start = raw.find(b"MSH")
    if start < 0 or len(raw) < start + 4:
        return ""
    sep = raw[start + 3 : start + 4]
    end = len(raw)
    for stop in (b"\r", b"\n"):
        k = raw.find(stop, start)
        if k >= 0:
            end = min(end, k)
    fields = raw[start:end].split(sep)
    # fields[0] is "MSH", fields[1] the encoding characters (MSH-2): MSH-n is fields[n-1]
    return fields[17].decode("ascii", "replace").strip().upper() if len(fields) > 17 else ""


def decode(payload: bytes) -> tuple[str, str]:
    """The payload as text with CR segment ends, and the codec it was read with."""
    raw = payload[len(BOM) :] if payload.startswith(BOM) else payload
    charset = _msh18(raw)
    codec = CHARSETS.get(charset.split("~")[0].split("^")[0].strip())
    if codec is None:
        raise _reject(
            "not-supported",
            f"Character set '{charset[:40]}' (MSH-18) is not supported",
            "MSH[1]-18",
        )
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        if charset:
            raise _reject(
                "structure", f"The message is not valid {charset} (MSH-18)", "MSH[1]-18"
            ) from None
        codec = "cp1252"
        text = raw.decode(codec, "replace")
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return text, codec


def split(text: str) -> list[str]:
    """The messages of a payload (one, or a batch's): each its segments joined by CR."""
    messages: list[list[str]] = []
    for line in text.split("\r"):
        line = line.strip("\x00 \t\x0b\x1c")
        if not line:
            continue
        name = line[:3]
        if name in ENVELOPE:
            continue
        if name == "MSH":
            messages.append([line])
        elif messages:
            messages[-1].append(line)
        else:
            raise _reject(
                "structure", "The payload does not start with an MSH (or FHS/BHS) segment", "MSH"
            )
    if not messages:
        raise _reject("structure", "The payload holds no HL7 v2 message (no MSH segment)", "MSH")
    return ["\r".join(m) for m in messages]


# --- escape sequences --------------------------------------------------------------------------


def unescape(value: str, esc: str, seps: dict[str, str]) -> str:
    if not esc or esc not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        end = value.find(esc, i + 1) if ch == esc else -1
        if end < 0:
            out.append(ch)
            i += 1
            continue
        seq = value[i + 1 : end]
        i = end + 1
        if seq in seps:
            out.append(seps[seq])
        elif seq == ".br":
            out.append("\n")
        elif seq.startswith("X") and len(seq) > 1:
            try:
                # hex data in the message's character set; never a NUL (no database keeps one)
                out.append(bytes.fromhex(seq[1:]).decode("utf-8", "replace").replace("\x00", ""))
            except ValueError:
                out.append(esc + seq + esc)
        elif (
            seq in ("H", "N")
            or seq[:1] in ("C", "M", "Z")
            or seq.startswith((".sp", ".in", ".ti", ".sk", ".ce", ".fi", ".nf"))
        ):
            continue  # highlighting, character-set switches, local and formatting: dropped
        else:
            out.append(esc + seq + esc)  # not an escape sequence: kept as sent
    return "".join(out)


# --- parsing ---------------------------------------------------------------------------------


def _position(name: str | None, previous: int = 0) -> int | None:
    """``PID_3`` -> 3; a child named by its datatype alone (a primitive value, or a component
    past its datatype's definition) -> the position after ``previous``."""
    if not name:
        return None
    head, _, tail = name.rpartition("_")
    if head and tail.isdigit():
        return int(tail)
    return previous + 1


def _raw(subcomponent: Any) -> str:
    """A value as sent (hl7apy's ``to_er7`` escapes it again, sequences it does not know
    included)."""
    value = getattr(subcomponent.value, "value", None)
    return value if isinstance(value, str) else str(subcomponent.to_er7())


def _children(element: object) -> list[tuple[int, object]]:
    out: list[tuple[int, object]] = []
    last = 0
    for child in element.children:  # type: ignore[attr-defined]
        pos = _position(child.name, last) or last + 1
        out.append((pos, child))
        last = pos
    return out


# hl7apy builds an element per component and subcomponent, each loading its datatype's
# definition: some 10 ms of CPU for a nine-segment ORU, more than everything else the listener
# does. The reading below asks hl7apy the same questions but fewer times: each segment's
# definition once per version, each distinct field value once (``_field``, memoised: codes,
# units, ranges and statuses repeat from message to message), and not at all for a value with no
# separator and no escape character in it, which hl7apy reads as that one value.

Comps = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _SegmentDefinition:
    references: Any  # hl7apy's structure_by_name of the segment
    infinite: bool  # a segment ending in a field of type varies (Z-segments): any position
    defined: frozenset[int]  # positions with a definition


@lru_cache(maxsize=512)
def _definition(name: str, version: str) -> _SegmentDefinition:
    segment = HlSegment(name, version=version, validation_level=VALIDATION_LEVEL.TOLERANT)
    references = segment.structure_by_name or {}
    defined = frozenset(p for p in (_position(str(n)) for n in references) if p is not None)
    return _SegmentDefinition(references, bool(segment.allow_infinite_children), defined)


# Values longer than this are read without the memo: an embedded document (ED, megabytes of
# base64) never repeats, and a feed of them would fill the memo's 65,536 places.
_MEMO_CHARS = 256


@lru_cache(maxsize=65536)
def _field(text: str, name: str, version: str, encoding: tuple[str, str, str, str, str]) -> Comps:
    """One repetition of a field read by hl7apy (``parse_field``, as ``parse_segment`` calls
    it), its values resolved; ``()`` for a position the segment does not define."""
    sep, comp, rep, esc, sub = encoding
    segment = name[:3]
    definition = _definition(segment, version)
    reference = definition.references.get(name)
    field_element = parse_field(
        text,
        name,
        version,
        {"FIELD": sep, "COMPONENT": comp, "REPETITION": rep, "ESCAPE": esc, "SUBCOMPONENT": sub},
        VALIDATION_LEVEL.TOLERANT,
        reference["ref"] if reference else None,
        definition.infinite,
    )
    if _position(field_element.name) is None:
        return ()  # a field past the segment's definition: not mapped
    seps = {"F": sep, "S": comp, "T": sub, "R": rep, "E": esc}
    comps: list[list[str]] = []
    for cpos, component in _children(field_element):
        subs: list[str] = []
        for spos, subcomponent in _children(component):
            subs.extend([""] * (spos - len(subs) - 1))
            subs.append(unescape(_raw(subcomponent), esc, seps))
        comps.extend([[] for _ in range(cpos - len(comps) - 1)])
        if cpos <= len(comps):
            comps[cpos - 1] = comps[cpos - 1] + subs
        else:
            comps.append(subs)
    return tuple(tuple(c) for c in comps)


def _segment_fields(
    line: str, name: str, version: str, encoding: tuple[str, str, str, str, str]
) -> dict[int, list[Rep]]:
    """The fields of one segment (its text as hl7apy's ``parse_segment`` takes it)."""
    sep, comp, rep, esc, sub = encoding
    definition = _definition(name, version)
    plain = (comp, sub, esc)
    out: dict[int, list[Rep]] = {}
    values = line[3:].split(sep) if name == "MSH" else line[4:].split(sep)
    for index, value in enumerate(values):
        pos = index + 1
        if name == "MSH" and pos in (1, 2):
            out[pos] = [Rep([[sep if pos == 1 else value]])]
            continue
        if not value.strip():
            continue  # hl7apy keeps no element for an empty field
        known = pos in definition.defined
        if not known and not definition.infinite:
            continue  # a field past the segment's definition: not mapped
        reps: list[Rep] = []
        for text in value.split(rep):
            if known and text and text.strip() == text and not any(c in text for c in plain):
                reps.append(Rep([[text]]))  # one value, as hl7apy reads it
                continue
            read = _field if len(text) <= _MEMO_CHARS else _field.__wrapped__
            comps = read(text, f"{name}_{pos}", version, encoding)
            if comps or known:
                reps.append(Rep([list(c) for c in comps]))
        if reps:
            out[pos] = reps
    return out


def _hl7apy_version(version: str) -> str:
    if version in VERSIONS:
        return version
    for known in sorted(VERSIONS, reverse=True):
        if version.startswith(known[:3]):
            return known[:3]
    raise _reject(
        "not-supported", f"HL7 version '{version[:20]}' is not supported (2.3 to 2.8)", "MSH[1]-12"
    )


def _header_fields(text: str) -> tuple[str, list[str]]:
    first = text.split("\r", 1)[0]
    if len(first) < 8 or not first.startswith("MSH"):
        raise _reject("structure", "The message does not start with an MSH segment", "MSH")
    sep = first[3]
    return sep, first.split(sep)


def parse(text: str, codec: str = "utf-8", read: frozenset[str] | None = None) -> Parsed:
    """One message (CR-separated segments) read by hl7apy into plain segments; with ``read``,
    only the segments named there (and MSH) have their fields read, the others keep their
    place and name."""
    sep, msh = _header_fields(text)
    encoding_chars = msh[1] if len(msh) > 1 else ""
    if len(encoding_chars) == 3 and "&" not in text and "&" not in encoding_chars + sep:
        # Old senders declare no subcomponent separator: '&' is free to be one.
        text = text.replace(f"MSH{sep}{encoding_chars}{sep}", f"MSH{sep}{encoding_chars}&{sep}", 1)
        encoding_chars += "&"
    if len(encoding_chars) < 4 or sep in encoding_chars or sep.isalnum():
        raise _reject("structure", "MSH-1/MSH-2 do not declare the separators", "MSH[1]-2")
    comp, rep, esc, sub = (encoding_chars[i] for i in range(4))
    version_field = msh[11] if len(msh) > 11 else ""
    version = version_field.split(comp)[0].strip()
    if not version:
        raise _reject("required", "The message names no HL7 version (MSH-12)", "MSH[1]-12")
    lib_version = _hl7apy_version(version)
    # Segment names must be three letters or digits, else hl7apy cannot read the message at all.
    for k, line in enumerate(text.split("\r"), start=1):
        if not _SEGMENT_NAME.match(line[:3]) or (len(line) > 3 and line[3] != sep):
            raise _reject("structure", f"Segment {k} has no valid segment name", f"segment {k}")
    if lib_version != version:
        text = text.replace(f"{sep}{version_field}", f"{sep}{lib_version}", 1)
    encoding = (sep, comp, rep, esc, sub)
    ordinals: dict[str, int] = {}
    segments: list[Segment] = []
    try:
        for line in text.split("\r"):
            name = line[:3]
            ordinals[name] = ordinals.get(name, 0) + 1
            out = Segment(name, ordinals[name])
            segments.append(out)
            if read is not None and name not in read and name != "MSH":
                continue  # kept in its place, its fields unread
            out.fields = _segment_fields(line.strip(), name, lib_version, encoding)
    except (HL7apyException, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise _reject(
            "structure", f"The message cannot be parsed as HL7 v{version}: {type(exc).__name__}"
        ) from None
    msh_seg = segments[0]
    # MSH-9: type^trigger^structure; the trigger may be missing in old senders' ACK-like types
    return Parsed(
        version=version,
        message_type=msh_seg.get(9, 1).upper(),
        trigger=msh_seg.get(9, 2).upper(),
        control_id=msh_seg.get(10),
        sending_application=msh_seg.get(3),
        sending_facility=msh_seg.get(4),
        segments=segments,
        encoding=codec,
    )


def parse_payload(payload: bytes, read: frozenset[str] | None = None) -> list[Parsed]:
    """Every message of a payload (one message, or a batch)."""
    text, codec = decode(payload)
    return [parse(m, codec, read) for m in split(text)]
