"""The HL7 v2 reader's tolerance, and the acknowledgements built for it."""

from __future__ import annotations

import base64

import pytest

from adapters.rsud import hl7
from adapters.rsud.hl7 import parse_payload
from fhirhub.errors import FhirError
from fhirhub.ingest import hl7ack
from fhirhub.ingest.hl7ack import ErrorItem

MSH = "MSH|^~\\&|KHANZA|RSUD01|FHIRHUB|DINKES|20240105083000||ADT^A28|C1|P|2.5"
PID = "PID|1||000123^^^RSUD01^MR||JOS\\XC3A9\\^MAR\\.br\\IA"


def family(payload: bytes) -> str:
    (parsed,) = parse_payload(payload)
    pid = parsed.first("PID")
    assert pid is not None
    return pid.get(5, 1)


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n", "\r\r\n"])
def test_any_line_end(end: str) -> None:
    (parsed,) = parse_payload((MSH + end + PID + end).encode())
    assert [s.name for s in parsed.segments] == ["MSH", "PID"]


def test_byte_order_mark_and_escapes() -> None:
    payload = b"\xef\xbb\xbf" + (MSH + "\r" + PID).encode()
    (parsed,) = parse_payload(payload)
    pid = parsed.first("PID")
    assert pid is not None
    assert pid.get(5, 1) == "JOS\u00e9"  # \XC3A9\: the bytes of é in UTF-8
    assert pid.get(5, 2) == "MAR\nIA"


def test_msh18_latin1_and_windows_1252_without_it() -> None:
    latin = (MSH + "||||||8859/1\rPID|1||1^^^RSUD01^MR||JOS\u00c9").encode("latin-1")
    assert family(latin) == "JOS\u00c9"
    cp1252 = (MSH + "\rPID|1||1^^^RSUD01^MR||JOS\u00c9").encode("cp1252")  # not UTF-8
    assert family(cp1252) == "JOS\u00c9"
    utf8 = (MSH + "||||||UNICODE UTF-8\rPID|1||1^^^RSUD01^MR||JOS\u00c9").encode()
    assert family(utf8) == "JOS\u00c9"


def test_an_unknown_character_set_is_refused_at_msh18() -> None:
    with pytest.raises(FhirError) as caught:
        parse_payload((MSH + "||||||EBCDIC\r" + PID).encode())
    assert caught.value.issues[0].expression == ("MSH[1]-18",)
    assert caught.value.issues[0].code == "not-supported"


def test_z_segments_and_fields_past_the_definition_are_tolerated() -> None:
    text = MSH + "\rZPI|1|x^y&z~w\r" + PID + "|" * 60 + "extra\rZZ1|"
    (parsed,) = parse_payload(text.encode())
    z = parsed.first("ZPI")
    assert z is not None
    assert z.reps(2)[0].components == [["x"], ["y", "z"]]
    assert z.reps(2)[1].get(1) == "w"


def test_three_encoding_characters() -> None:
    (parsed,) = parse_payload(b"MSH|^~\\|A|RSUD01|C|D|20240101||ADT^A28|1|P|2.4\rPID|1||1^^^X^MR")
    assert parsed.control_id == "1"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"garbage",
        b"PID|1||x",
        b"MSH",
        b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|",
        b"MSH|^~\\&\rXX|1",
    ],
)
def test_what_is_not_hl7_is_a_structure_or_required_error(payload: bytes) -> None:
    with pytest.raises(FhirError) as caught:
        parse_payload(payload)
    assert caught.value.issues[0].code in ("structure", "required")


def test_header_of_garbage_is_none_and_of_a_batch_its_first_message() -> None:
    assert hl7ack.read_header(b"hello") is None
    header = hl7ack.read_header(b"FHS|^~\\&|A|B\rBHS|^~\\&|A|B\r" + MSH.encode() + b"|||AL|NE")
    assert header is not None
    assert (header.sending_facility, header.control_id, header.kind) == ("RSUD01", "C1", "ADT^A28")
    assert header.enhanced and header.accept_ack == "AL" and header.application_ack == "NE"


def test_ack_swaps_sender_and_receiver_and_escapes_text() -> None:
    header = hl7ack.read_header(MSH.encode())
    ack = hl7ack.build(header, "AE", errors=[ErrorItem("value", "a|b^c", "OBX[2]-5.1")])
    segments = ack.decode().rstrip("\r").split("\r")
    msh = segments[0].split("|")
    assert msh[2:6] == ["FHIRHUB", "DINKES", "KHANZA", "RSUD01"]
    assert msh[8] == "ACK^A28^ACK"
    assert segments[1] == "MSA|AE|C1"
    assert segments[2] == "ERR||OBX^2^5^1^1|102^Data type error^HL70357|E||||a\\F\\b\\S\\c"


def test_enhanced_mode_choices() -> None:
    assert hl7ack.wanted("AL", True) and hl7ack.wanted("AL", False)
    assert not hl7ack.wanted("NE", True) and not hl7ack.wanted("NE", False)
    assert hl7ack.wanted("ER", False) and not hl7ack.wanted("ER", True)
    assert hl7ack.wanted("SU", True) and not hl7ack.wanted("SU", False)
    assert hl7ack.wanted("", True)


def test_reject_or_error() -> None:
    assert hl7ack.rejection_code([ErrorItem("not-supported", "")]) == "AR"
    assert hl7ack.rejection_code([ErrorItem("required", ""), ErrorItem("structure", "")]) == "AE"


def test_long_values_are_not_kept_by_the_readers_memo() -> None:
    # The reader memoises field values (codes, units and ranges repeat); an embedded document
    # (ED, megabytes of base64) never repeats, and a feed of them must not pile up in memory.
    sizes = []
    for i in range(3):
        data = base64.b64encode(bytes([i]) * 300_000).decode()
        text = (
            "MSH|^~\\&|LIS|RSUD01|FHIRHUB|DINKES|20240105083000||ORU^R01|C1|P|2.5\r"
            f"OBX|1|ED|11502-2^Report^LN||^application^pdf^Base64^{data}||||||F"
        )
        (parsed,) = parse_payload(text.encode())
        (obx,) = parsed.all("OBX")
        assert obx.get(5, 5) == data
        sizes.append(hl7._field.cache_info().currsize)
    assert sizes[0] == sizes[1] == sizes[2]
