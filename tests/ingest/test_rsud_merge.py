"""HL7 ADT^A40 through the pipeline: the patient index's merge call (docs/mpi.md, "Merges from
sources") puts both records in one Person as a decision, and the retired record is marked
replaced by the surviving one; a merge naming a record fhirhub does not hold is refused."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from fhirhub.ingest.service import IngestService
from fhirhub.model.json import loads

GOLDEN = Path(__file__).parent / "golden_rsud"
A40 = (GOLDEN / "adt-a40-v25-merge.hl7").read_bytes()


def admission(control: str, mrn: str, name: bytes) -> bytes:
    """An ADT^A28 (a person registered) of the merged patient, under ``mrn`` and ``name``."""
    segments = A40.replace(b"\n", b"\r").split(b"\r")
    out = []
    for seg in segments:
        if seg.startswith(b"MRG") or not seg.strip():
            continue
        if seg.startswith(b"MSH"):
            seg = seg.replace(b"ADT^A40^ADT_A39|A40-1", b"ADT^A28^ADT_A05|" + control.encode())
        if seg.startswith(b"EVN"):
            seg = seg.replace(b"A40", b"A28")
        if seg.startswith(b"PID"):
            seg = seg.replace(b"000123^^^RSUD01^MR", mrn.encode() + b"^^^RSUD01^MR")
            seg = seg.replace(b"WA ODE\\T\\SITI^NURHAYATI", name)
            if mrn != "000123":  # the duplicate record came without NIK and BPJS card
                seg = seg.replace(
                    b"~7472011505800001^^^DUKCAPIL^NNIDN~0001234567890^^^BPJS^SN", b""
                )
        out.append(seg)
    return b"\r".join(out) + b"\r"


def patient_ids(engine: Engine) -> dict[str, str]:
    """MRN -> Patient id, for the RSUD's records."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT res_id, content FROM resources WHERE res_type = 'Patient'")
        ).all()
    out = {}
    for res_id, content in rows:
        body = content if isinstance(content, dict) else loads(content)
        for ident in body.get("identifier", []):
            if ident["system"].endswith("/mrn/rsud01"):
                out[ident["value"]] = res_id
    return out


def test_a40_merges_two_records_into_one_person_as_a_decision(
    service: IngestService, engine: Engine
) -> None:
    for control, mrn, name in (("A1", "000123", b"WA ODE\\T\\SITI^NURHAYATI"),
                               ("A2", "000999", b"NURHAYATI^^^^NY")):  # fmt: skip
        receipt = service.submit("rsud", admission(control, mrn, name))
        assert service.get(receipt.id).status == "processed", service.get(receipt.id).outcome
    ids = patient_ids(engine)
    receipt = service.submit("rsud", A40)
    row = service.get(receipt.id)
    assert row.status == "processed", row.outcome
    with engine.connect() as conn:
        members = dict(
            conn.execute(
                text("SELECT patient_id, person_id FROM mpi_records WHERE patient_id IN (:a, :b)"),
                {"a": ids["000123"], "b": ids["000999"]},
            ).all()
        )
        levels = set(
            conn.execute(
                text("SELECT assurance FROM mpi_records WHERE patient_id IN (:a, :b)"),
                {"a": ids["000123"], "b": ids["000999"]},
            ).scalars()
        )
        retired = conn.execute(
            text("SELECT content FROM resources WHERE res_type = 'Patient' AND res_id = :i"),
            {"i": ids["000999"]},
        ).scalar_one()
    assert len(set(members.values())) == 1 and levels == {"level4"}
    retired = retired if isinstance(retired, dict) else loads(retired)
    assert retired["active"] is False
    assert retired["link"] == [
        {"other": {"reference": f"Patient/{ids['000123']}"}, "type": "replaced-by"}
    ]


def test_a40_naming_a_record_fhirhub_does_not_hold_is_refused_at_mrg(
    service: IngestService,
) -> None:
    receipt = service.submit("rsud", A40)
    row = service.get(receipt.id)
    assert row.status == "rejected"
    assert row.outcome is not None and "MRG[1]-1" in row.outcome
