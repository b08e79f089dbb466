"""HL7 v2 acknowledgements: the header of a received message and the ACK that answers it.

Transport-level HL7, so that the MLLP listener can answer anything, garbage included, without
the source's adapter: the header is read from the raw bytes by hand (a message too broken for a
parser still gets its ``AR``); the adapter does the real parsing.

- Original mode (MSH-15 and MSH-16 empty): one ACK, ``AA`` (stored), ``AE`` (kept but not
  mapped: the ERR segments say where and why) or ``AR`` (an unsupported type or version, or
  not HL7 v2 at all).
- Enhanced mode: a commit ACK (``CA``/``CE``/``CR``) once the message is kept, as MSH-15 asks,
  then the application ACK (``AA``/``AE``/``AR``) as MSH-16 asks (AL always, NE never, ER on
  errors only, SU on success only; empty counts as AL), both on the same connection.
- ERR: HL7 2.5 and later get ERR-2 (location), ERR-3 (HL7 table 0357 code), ERR-4 (severity)
  and ERR-8 (the text); 2.3 and 2.4 get ERR-1 (segment^sequence^field^code).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count

BOM = b"\xef\xbb\xbf"
_LOCATION = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+)(?:\.(\d+))?)?")
# FHIR issue type -> HL7 table 0357 (message error condition codes)
_ERROR_CODES = {
    "required": ("101", "Required field missing"),
    "value": ("102", "Data type error"),
    "invalid": ("102", "Data type error"),
    "code-invalid": ("103", "Table value not found"),
    "structure": ("100", "Segment sequence error"),
    "not-supported": ("200", "Unsupported message type"),
    "not-found": ("204", "Unknown key identifier"),
    "business-rule": ("207", "Application internal error"),
    "transient": ("207", "Application internal error"),
}
REJECT_CODES = frozenset({"not-supported", "structure"})  # these make an AR, the rest an AE
_control = count(1)


@dataclass(frozen=True)
class Header:
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""  # MSH-9 as sent, e.g. ADT^A01^ADT_A01
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5"
    accept_ack: str = ""  # MSH-15
    application_ack: str = ""  # MSH-16

    @property
    def enhanced(self) -> bool:
        return bool(self.accept_ack or self.application_ack)

    @property
    def kind(self) -> str:
        """``ADT^A01``: the message type and trigger, for counting."""
        parts = self.message_type.split("^")
        return "^".join(p for p in parts[:2] if p)[:16] or "unknown"


@dataclass(frozen=True)
class ErrorItem:
    code: str  # FHIR issue type
    text: str
    location: str = ""  # PID[1]-3.1


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").strip()


def _field(fields: list[bytes], comp: bytes, n: int, first_only: bool) -> str:
    # fields[0] is "MSH" and fields[1] MSH-2: MSH-n is fields[n - 1]
    if len(fields) < n:
        return ""
    value = fields[n - 1]
    return _text(value.split(comp)[0] if first_only else value)


def read_header(payload: bytes) -> Header | None:
    """The MSH of the first message (or None when the payload does not start with one, after a
    byte-order mark, blank lines, or a batch header)."""
    data = payload[:8192]
    if data.startswith(BOM):
        data = data[len(BOM) :]
    for line in re.split(rb"\r\n|\r|\n", data):
        line = line.strip(b" \t\x0b\x1c\x00")
        if not line or line[:3] in (b"FHS", b"BHS"):
            continue
        if not line.startswith(b"MSH") or len(line) < 8:
            return None
        sep = line[3:4]
        if sep.isalnum() or sep in b" \r\n":
            return None
        fields = line.split(sep)
        enc = fields[1] if len(fields) > 1 else b""
        comp = enc[:1] or b"^"

        def f(
            n: int, first_only: bool = True, fields: list[bytes] = fields, comp: bytes = comp
        ) -> str:
            return _field(fields, comp, n, first_only)

        return Header(
            sending_application=f(3),
            sending_facility=f(4),
            receiving_application=f(5),
            receiving_facility=f(6),
            message_type=f(9, first_only=False).replace(comp.decode("latin-1"), "^"),
            control_id=f(10),
            processing_id=f(11) or "P",
            version=f(12) or "2.5",
            accept_ack=f(15).upper(),
            application_ack=f(16).upper(),
        )
    return None


def escape(value: str) -> str:
    """ER7 escaping of text (with the standard encoding characters); line breaks as ``\\.br\\``."""
    out = (
        value.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )
    return re.sub(r"\r\n|\r|\n", "\\\\.br\\\\", out)


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")


def _err_segment(item: ErrorItem, version: str) -> str:
    code, name = _ERROR_CODES.get(item.code, ("207", "Application internal error"))
    if item.code == "not-supported" and item.location.endswith("-12"):
        code, name = "203", "Unsupported version id"
    m = _LOCATION.match(item.location or "")
    seg, seq, fld, comp = m.groups() if m else (None, None, None, None)
    modern = not version.startswith(("2.1", "2.2", "2.3", "2.4"))
    text = escape(item.text[:500])
    if modern:
        erl = "^".join(
            x or "" for x in (seg, seq or ("1" if seg else None), fld, "1" if comp else None, comp)
        ).rstrip("^")
        return f"ERR||{erl}|{code}^{name}^HL70357|E||||{text}"
    eld = "^".join([seg or "", seq or ("1" if seg else ""), fld or "", f"{code}&{name}&HL70357"])
    return f"ERR|{eld}"


HL7_MEDIA_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7", "application/edi-hl7")


def is_hl7(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";")[0].strip().lower() in HL7_MEDIA_TYPES  # type: ignore[union-attr]


def err_segments(errors: list[ErrorItem], version: str = "2.5") -> list[str]:
    """The ERR segments an ACK carries for ``errors`` (the inbox shows them too)."""
    return [_err_segment(e, version) for e in errors]


def build(
    header: Header | None,
    code: str,
    *,
    text: str = "",
    errors: list[ErrorItem] | tuple[ErrorItem, ...] = (),
) -> bytes:
    """An ACK (``MSA-1`` = ``code``) for ``header``'s message, as UTF-8 ER7 (without MLLP
    framing). ``header`` None: the input had no MSH, so the ACK names no message."""
    h = header or Header()
    version = h.version if re.fullmatch(r"2\.[3-8](\.\d)?", h.version) else "2.5"
    trigger = h.message_type.split("^")[1] if h.message_type.count("^") >= 1 else ""
    control = f"FH{int(time.time() * 1000) % 10**13:013d}{next(_control) % 10**4:04d}"
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            escape(h.receiving_application) or "FHIRHUB",
            escape(h.receiving_facility),
            escape(h.sending_application),
            escape(h.sending_facility),
            _timestamp(),
            "",
            f"ACK^{escape(trigger)}^ACK" if trigger else "ACK",
            control,
            escape(h.processing_id)[:3] or "P",
            version,
        ]
    )
    msa = f"MSA|{code}|{escape(h.control_id)}"
    if (text and version.startswith(("2.3", "2.4"))) or (text and not errors):
        msa += f"|{escape(text[:80])}"
    segments = [msh, msa, *(_err_segment(e, version) for e in errors)]
    return ("\r".join(segments) + "\r").encode("utf-8")


def wanted(mode: str, success: bool) -> bool:
    """Whether an enhanced-mode acknowledgement of this ``mode`` (MSH-15/16) is sent."""
    mode = mode or "AL"
    return mode == "AL" or (mode == "ER" and not success) or (mode == "SU" and success)


def errors_of(outcome: dict[str, object] | None) -> list[ErrorItem]:
    """The ERR items of a rejected message's OperationOutcome."""
    out: list[ErrorItem] = []
    issues = outcome.get("issue") if isinstance(outcome, dict) else None
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        expressions = issue.get("expression") or [""]
        where = expressions[0] if isinstance(expressions, list) and expressions else ""
        out.append(
            ErrorItem(
                str(issue.get("code", "exception")),
                str(issue.get("diagnostics", "")),
                str(where) if _LOCATION.match(str(where)) else "",
            )
        )
    return out


def rejection_code(errors: list[ErrorItem]) -> str:
    """``AR`` when the message was refused as a whole (not HL7 v2 we read, an unsupported type
    or version), ``AE`` when its content could not be mapped."""
    return "AR" if errors and all(e.code in REJECT_CODES for e in errors) else "AE"
