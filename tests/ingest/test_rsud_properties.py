"""Property tests of the HL7 v2 reader and mapping, and of the MLLP listener under random input."""

from __future__ import annotations

import string
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mllp_client import Client, message, running
from sqlalchemy import Engine

from adapters.rsud.hl7 import parse_payload, unescape
from fhirhub.errors import FhirError
from fhirhub.ingest import Message, hl7ack
from fhirhub.ingest.adapters import Context
from fhirhub.ingest.pipeline import Pipeline
from fhirhub.ingest.service import IngestService

ROOT = Path(__file__).resolve().parents[2]
MRN = "https://fhirhub.baubaukota.go.id/sid/mrn/rsud01"
NIK = "https://fhir.kemkes.go.id/id/nik"
VERSIONS = ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"]
TRIGGERS = ["A01", "A02", "A03", "A04", "A05", "A08", "A11", "A13", "A28", "A31"]
PIPELINE = Pipeline(None, Context(ROOT / "mappings", ROOT / "terminology"))  # type: ignore[arg-type]


def hl7_escape(s: str) -> str:
    return (
        s.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


def canonical(payload: bytes) -> dict[str, Any]:
    return PIPELINE.canonical(Message(0, "rsud", None, "application/hl7-v2", 0, payload)).bundle


# Names as clerks type them: letters, Indonesian names' punctuation, and HL7's separators
names = st.text(
    alphabet=string.ascii_letters + " .'-|^&~\\" + "éÉñ", min_size=1, max_size=30
).filter(lambda s: s.strip() == s and s.strip())
mrns = st.text(alphabet=string.digits + ".-", min_size=1, max_size=12).filter(
    lambda s: s.strip(".-")
)


@settings(max_examples=60, deadline=None)
@given(
    family=names,
    given_name=names,
    mrn=mrns,
    nik=st.one_of(st.none(), st.text(alphabet=string.digits, min_size=16, max_size=16)),
    version=st.sampled_from(VERSIONS),
    trigger=st.sampled_from(TRIGGERS),
    line_end=st.sampled_from(["\r", "\n", "\r\n"]),
    bom=st.booleans(),
    z_segment=st.booleans(),
    birth=st.dates(min_value=date(1900, 1, 1)),
    charset=st.sampled_from(["", "UNICODE UTF-8", "8859/1"]),
)
def test_any_adt_maps_its_patient(
    family: str,
    given_name: str,
    mrn: str,
    nik: str | None,
    version: str,
    trigger: str,
    line_end: str,
    bom: bool,
    z_segment: bool,
    birth: Any,
    charset: str,
) -> None:
    ids = f"{hl7_escape(mrn)}^^^RSUD01^MR" + (f"~{nik}^^^DUKCAPIL^NNIDN" if nik else "")
    pv1 = "|".join(["PV1", "1", "I", "RANAP^^^RSUD01", *[""] * 15, "V1"])
    msh18 = f"||||||{charset}" if charset else ""
    segments = [
        f"MSH|^~\\&|APP|RSUD01|FHIRHUB|DINKES|20240105083000||ADT^{trigger}|X1|P|{version}{msh18}",
        f"EVN|{trigger}|20240105083000",
        f"PID|1||{ids}||{hl7_escape(family)}^{hl7_escape(given_name)}||{birth:%Y%m%d}|F",
        pv1,
    ]
    if z_segment:
        segments.insert(2, "ZXY|1|a^b&c~d|\\X41\\")
    text = line_end.join(segments)
    codec = "latin-1" if charset == "8859/1" else "utf-8"
    try:
        payload = text.encode(codec)
    except UnicodeEncodeError:
        assume(False)
        raise
    if bom:
        payload = b"\xef\xbb\xbf" + payload
    bundle = canonical(payload)
    patient = bundle["entry"][0]["resource"]
    identifiers = {i["system"]: i["value"] for i in patient["identifier"] if "system" in i}
    assert identifiers[MRN] == mrn.strip()
    if nik:
        assert identifiers[NIK] == nik
    assert patient["name"][0]["family"] == family
    assert patient["name"][0]["given"] == [given_name]
    assert patient["birthDate"] == birth.isoformat()
    encounters = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"]
    assert len(encounters) == (0 if trigger in ("A28", "A31") else 1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_escaping_round_trips(value: str) -> None:
    seps = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}
    assert unescape(hl7_escape(value), "\\", seps) == value


valid = [
    (ROOT / "tests" / "ingest" / "golden_rsud" / p).read_bytes()
    for p in ("adt-a01-v25.hl7", "oru-r01-v25.hl7", "vxu-v04-v251.hl7")
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if not base:
            break
        i = draw(st.integers(0, len(base) - 1))
        if kind == "flip":
            base[i] = draw(st.integers(0, 255))
        elif kind == "cut":
            del base[i:]
        elif kind == "insert":
            base[i:i] = draw(st.binary(max_size=8))
        else:
            del base[i : i + draw(st.integers(1, 20))]
    return bytes(base)


@settings(max_examples=200, deadline=None)
@given(mutated())
def test_any_input_is_mapped_or_refused_with_an_outcome(payload: bytes) -> None:
    mapped_or_refused(payload)


def mapped_or_refused(payload: bytes) -> dict[str, Any] | None:
    """Whatever arrives, the adapter answers a Bundle (returned) or a FhirError with its
    issues (None), never another error."""
    try:
        bundle = canonical(payload)
    except FhirError as err:
        assert err.issues
        return None
    assert bundle["type"] == "transaction"
    return bundle


# Values a field may hold: codes, numbers, dates, components, repetitions, escapes, blanks
_atoms = st.one_of(
    st.sampled_from(["", "Y", "N", "F", "M", "U", "A", "D", "P", "C", "X", "H", "L", "MR"]),
    st.sampled_from(["19800515", "20240105083000", "2024", "202401", "999", "0", "-1", "<5"]),
    st.sampled_from(["RSUD01", "DUKCAPIL", "NNIDN", "BPJS", "LN", "I10", "CVX", "UCUM", "L"]),
    st.text(alphabet=string.ascii_letters + string.digits + " .-/\\", max_size=12),
)
_components = st.lists(_atoms, min_size=1, max_size=6).map("^".join)
_field_values = st.lists(_components, min_size=1, max_size=3).map("~".join)


@st.composite
def shuffled_fields(draw: st.DrawFn) -> bytes:
    """A message of a mapped type whose segments hold random values at random positions (a
    field where the mapping expects another kind of value, or one the mapping does not
    expect at all)."""
    kind = draw(st.sampled_from(["ADT^A01", "ADT^A08", "ADT^A28", "ADT^A40", "ORU^R01", "VXU^V04"]))
    by_type = {"ADT": ["EVN", "NK1", "PV1", "DG1", "MRG"], "ORU": ["PV1", "OBR", "OBX", "NTE"]}
    pool = by_type.get(kind[:3], ["NK1", "ORC", "RXA", "RXR", "OBX"])
    segments = [
        f"MSH|^~\\&|APP|RSUD01|FHIRHUB|DINKES|20240105083000||{kind}|F1|P|"
        + draw(st.sampled_from(VERSIONS))
    ]
    # the PID mostly names its record, so that the mapping goes on past it
    pid = {1: "1", 3: "000123^^^RSUD01^MR", 5: "DOE^JOHN", 7: "19800101", 8: "M"}
    names = ["PID", *(draw(st.sampled_from(pool)) for _ in range(draw(st.integers(1, 6))))]
    for n, name in enumerate(names):
        fields = draw(st.dictionaries(st.integers(1, 45), _field_values, max_size=8))
        if n == 0:
            fields = {**pid, **fields} if draw(st.booleans()) else {**fields, **pid}
        width = max(fields, default=1)
        segments.append("|".join([name, *(fields.get(i, "") for i in range(1, width + 1))]))
    return "\r".join(segments).encode()


@settings(max_examples=300, deadline=None)
@given(shuffled_fields())
def test_any_value_in_any_field_is_mapped_or_refused_with_an_outcome(payload: bytes) -> None:
    bundle = mapped_or_refused(payload)
    if bundle is not None:
        patient = bundle["entry"][0]["resource"]
        assert isinstance(patient.get("identifier", []), list)


frames = st.one_of(
    mutated(),
    st.binary(max_size=200),
    st.sampled_from(valid).map(lambda v: v[: len(v) // 2]),
    st.just(message("FUZZ", visit="VF")),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=6), split=st.integers(1, 50))
def test_the_listener_never_dies_and_answers_every_complete_frame(
    listener_port: int, batch: list[bytes], split: int
) -> None:
    cleaned = [f.replace(b"\x0b", b" ").replace(b"\x1c", b" ") for f in batch]
    for f in cleaned:
        header = hl7ack.read_header(f)
        assume(header is None or not header.enhanced)
    stream = b"".join(b"\x0b" + f + b"\x1c\r" for f in cleaned)
    client = Client(listener_port)
    try:
        for i in range(0, len(stream), split):  # in pieces of any size
            client.send_raw(stream[i : i + split])
        acks = [client.receive() for _ in cleaned]
    finally:
        client.close()
    for ack, sent in zip(acks, cleaned, strict=True):
        assert ack.code in ("AA", "AE", "AR")
        header = hl7ack.read_header(sent)
        assert ack.control_id == (hl7ack.escape(header.control_id) if header else "")


@pytest.fixture
def listener_port(service: IngestService, engine: Engine) -> Any:
    with running(service.pipeline, max_frame_bytes=64 * 1024) as (_, port):
        yield port
        after = Client(port)  # still there, and still storing
        assert after.exchange(message("ALIVE", visit="VA")).code == "AA"
        after.close()


def test_batch_files_split_into_their_messages() -> None:
    a01, oru = valid[0].decode(), valid[1].decode()
    batch = "\r".join(
        [
            "FHS|^~\\&|KHANZA|RSUD01|FHIRHUB|DINKES|20240105",
            "BHS|^~\\&|KHANZA|RSUD01|FHIRHUB|DINKES|20240105",
            a01.strip("\r"),
            oru.strip("\r"),
            "BTS|2",
            "FTS|1",
        ]
    ).encode()
    assert [p.message_type for p in parse_payload(batch)] == ["ADT", "ORU"]
    bundle = canonical(batch)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Encounter") == 1
    assert kinds.count("Observation") == 5
