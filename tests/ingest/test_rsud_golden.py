"""Golden tests of the RSUD adapter: one HL7 v2 message per type and trigger (versions 2.3 to
2.8) in, the canonical Bundle out (``golden_rsud/<case>.hl7`` -> ``<case>.expected.json``).

As in test_golden.py, the recorded files only catch changes; the hand-written checks
(``CHECKS``) are what say the mapping is right, worked out from the message and the HL7 v2-to-FHIR
mapping guide. ``FHIRHUB_UPDATE_GOLDEN=1`` rewrites the expected files and then fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mllp_client import message

from fhirhub.errors import FhirError
from fhirhub.ingest import Message
from fhirhub.ingest.adapters import Context
from fhirhub.ingest.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden_rsud"
CASES = sorted(p.stem for p in GOLDEN.glob("*.hl7") if p.stem != "adt-a40-v25-merge")
MRN = "https://fhirhub.baubaukota.go.id/sid/mrn/rsud01"
NIK = "https://fhir.kemkes.go.id/id/nik"
NIK_IBU = "https://fhir.kemkes.go.id/id/nik-ibu"
BPJS = "https://fhir.bpjs-kesehatan.go.id/id/no-kartu"
VISIT = "http://sys-ids.kemkes.go.id/encounter/10085099"
LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD9 = "http://hl7.org/fhir/sid/icd-9-cm"


def canonical(payload: bytes, mappings: Path = ROOT / "mappings") -> dict[str, Any]:
    pipeline = Pipeline(None, Context(mappings, ROOT / "terminology"))  # type: ignore[arg-type]
    message = Message(0, "rsud", None, "application/hl7-v2", 0, payload)
    return pipeline.canonical(message).bundle


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    found = resources(bundle, rtype)
    assert len(found) == 1, f"{len(found)} {rtype}"
    return found[0]


def ids(resource: dict[str, Any]) -> dict[str, str]:
    return {i.get("system", ""): i["value"] for i in resource.get("identifier", [])}


def _patient(b: dict[str, Any]) -> None:
    p = one(b, "Patient")
    assert ids(p)[MRN] == "000123"
    assert ids(p)[NIK] == "7472011505800001"
    assert ids(p)[BPJS] == "0001234567890"
    assert p["name"][0]["family"] == "WA ODE&SITI"  # \T\ is the subcomponent separator
    assert p["name"][0]["given"] == ["NURHAYATI"]
    assert p["birthDate"] == "1980-05-15"
    assert p["gender"] == "female"
    assert p["telecom"][0]["value"].startswith("+628")
    entry = b["entry"][0]
    assert entry["request"]["method"] == "PUT"
    assert entry["request"]["url"] == f"Patient?identifier={MRN}|000123"


def _visit(b: dict[str, Any], status: str, number: str = "2024/01/05/000001") -> dict[str, Any]:
    e = one(b, "Encounter")
    assert ids(e)[VISIT] == number
    assert e["status"] == status
    assert e["serviceProvider"]["reference"] == "Organization/org-rsud01"
    return e


def check_a01(b: dict[str, Any]) -> None:
    _patient(b)
    e = _visit(b, "in-progress")
    assert e["class"]["code"] == "IMP"
    assert e["period"] == {"start": "2024-01-05T08:30:00+08:00"}
    assert [h["status"] for h in e["statusHistory"]] == ["arrived", "in-progress"]
    assert e["location"][0]["location"]["display"] == "RANAP / 201 / 2"
    assert e["participant"][0]["individual"]["identifier"]["value"] == "D001"
    rp = one(b, "RelatedPerson")
    assert rp["relationship"][0]["coding"][0]["code"] == "SPS"
    assert rp["patient"]["reference"] == b["entry"][0]["fullUrl"]
    conditions = resources(b, "Condition")
    assert [c["code"]["coding"][0]["code"] for c in conditions] == ["I10", "E11.9"]
    assert all(c["code"]["coding"][0]["system"] == ICD10 for c in conditions)
    assert [d["use"]["coding"][0]["code"] for d in e["diagnosis"]] == ["AD", "DD"]


def check_a02(b: dict[str, Any]) -> None:
    e = _visit(b, "in-progress")
    prior, now = e["location"]
    assert prior["location"]["display"] == "RANAP / 201 / 2"
    assert prior["status"] == "completed"
    assert prior["period"]["end"] == "2024-01-06T09:45:00+08:00"  # EVN-6, when it happened
    assert now["location"]["display"] == "ICU / 1 / 1"
    assert now["status"] == "active"


def check_a03(b: dict[str, Any]) -> None:
    e = _visit(b, "finished")
    assert e["period"] == {
        "start": "2024-01-05T08:30:00+08:00",
        "end": "2024-01-08T14:00:00+08:00",
    }
    assert e["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] == "exp"
    assert [h["status"] for h in e["statusHistory"]] == ["arrived", "in-progress", "finished"]


def check_a04(b: dict[str, Any]) -> None:
    e = _visit(b, "in-progress", "2024/02/01/000007")  # admitted, not discharged
    assert e["class"]["code"] == "AMB"


def check_a05(b: dict[str, Any]) -> None:
    e = _visit(b, "planned", "2024/03/01/000002")
    assert e["class"]["code"] == "PRENC"
    assert "statusHistory" not in e


def check_a08(b: dict[str, Any]) -> None:
    assert one(b, "Patient")["telecom"][0]["value"] == "+6282199998888"
    e = _visit(b, "in-progress", "2024/01/20/000003")  # the Z-segment is ignored
    assert e["class"]["code"] == "EMER"


def check_a11(b: dict[str, Any]) -> None:
    e = _visit(b, "cancelled")
    assert e["statusHistory"][-1]["status"] == "cancelled"


def check_a13(b: dict[str, Any]) -> None:
    e = _visit(b, "in-progress")
    assert "end" not in e["period"]  # the discharge is cancelled: the stay goes on


def check_a28(b: dict[str, Any]) -> None:
    _patient(b)
    assert not resources(b, "Encounter")
    assert one(b, "RelatedPerson")["name"][0]["family"] == "LA ODE"


def check_a31(b: dict[str, Any]) -> None:
    p = one(b, "Patient")
    assert p["maritalStatus"]["coding"][0]["code"] == "W"
    assert not resources(b, "Encounter")


def check_oru(b: dict[str, Any]) -> None:
    assert b["entry"][0]["request"] == {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": f"identifier={MRN}|000123",
    }
    assert not resources(b, "Encounter")  # a result does not rewrite the visit
    report = one(b, "DiagnosticReport")
    assert report["status"] == "final"
    assert report["issued"] == "2024-02-01T11:00:00+08:00"
    obs = resources(b, "Observation")
    assert len(obs) == 5
    assert [r["reference"] for r in report["result"]] == [
        e["fullUrl"] for e in b["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    glucose, hb, local, egfr, text = obs
    assert glucose["code"]["coding"][0] == {"system": LOINC, "code": "2345-7", "display": "Glucose"}
    assert glucose["valueQuantity"] == {
        "value": 212,
        "unit": "mg/dL",
        "system": "http://unitsofmeasure.org",
        "code": "mg/dL",
    }
    assert glucose["referenceRange"][0]["low"]["value"] == 70
    assert glucose["referenceRange"][0]["high"]["value"] == 140
    assert glucose["interpretation"][0]["coding"][0]["code"] == "H"
    assert glucose["status"] == "final"
    assert glucose["encounter"]["reference"].startswith("Encounter/")
    assert hb["valueQuantity"]["value"] == 10.5  # a decimal comma
    assert hb["status"] == "corrected"
    assert hb["interpretation"][0]["coding"][0]["code"] == "L"
    # a local code through the facility's table: LOINC first, the local coding kept
    assert [c["code"] for c in local["code"]["coding"]] == ["2339-0", "GDS"]
    assert local["status"] == "preliminary"
    assert local["valueCodeableConcept"]["coding"][0]["code"] == "10828004"
    assert egfr["valueQuantity"]["comparator"] == ">"
    assert egfr["referenceRange"][0]["low"]["value"] == 60
    assert text["valueString"] == "Pusing\nmual"
    assert text["note"] == [{"text": "free text note"}]  # the NTE after its OBX
    assert "note" not in egfr


def check_vxu(b: dict[str, Any]) -> None:
    p = one(b, "Patient")
    assert ids(p)[NIK_IBU] == "7472011505800001"
    hb, bcg = resources(b, "Immunization")
    assert hb["vaccineCode"]["coding"][0] == {
        "system": CVX,
        "code": "08",
        "display": "Hep B, ped",
    }
    assert hb["occurrenceDateTime"] == "2024-03-01T10:00:00+08:00"
    assert hb["lotNumber"] == "LOT-HB1"
    assert hb["doseQuantity"]["value"] == 0.5
    assert hb["status"] == "completed"
    assert hb["primarySource"] is True
    assert [c["code"] for c in bcg["vaccineCode"]["coding"]] == ["19", "BCG"]  # local -> CVX
    assert "doseQuantity" not in bcg  # 999: unknown amount
    assert one(b, "RelatedPerson")["relationship"][0]["coding"][0]["code"] == "MTH"


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "adt-a01-v25": check_a01,
    "adt-a02-v231-transfer": check_a02,
    "adt-a03-v24-discharge": check_a03,
    "adt-a04-v26-outpatient": check_a04,
    "adt-a05-v27-preadmit": check_a05,
    "adt-a08-v28-update": check_a08,
    "adt-a11-v25-cancel": check_a11,
    "adt-a13-v251-cancel-discharge": check_a13,
    "adt-a28-v25-person": check_a28,
    "adt-a31-v23-person": check_a31,
    "oru-r01-v25": check_oru,
    "vxu-v04-v251": check_vxu,
}


def test_every_case_has_checks() -> None:
    assert set(CASES) == set(CHECKS)


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    out = canonical((GOLDEN / f"{case}.hl7").read_bytes())
    CHECKS[case](out)
    expected_path = GOLDEN / f"{case}.expected.json"
    if os.environ.get("FHIRHUB_UPDATE_GOLDEN") == "1":
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("FHIRHUB_UPDATE_GOLDEN=1 is refused under CI=true", pytrace=False)
        expected_path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
        pytest.fail(f"recorded {expected_path.name}; review the diff and run again")
    assert out == json.loads(expected_path.read_text())


def test_merge_maps_to_the_surviving_patient_and_a_merge_for_the_patient_index() -> None:
    from adapters.rsud import adapter as rsud
    from fhirhub.ingest import Merge

    payload = (GOLDEN / "adt-a40-v25-merge.hl7").read_bytes()
    mapped = rsud.map(
        Message(0, "rsud", None, None, 0, payload), Context(ROOT / "mappings", ROOT / "terminology")
    )
    (entry,) = mapped.bundle["entry"]
    assert entry["resource"]["resourceType"] == "Patient"
    mrn = "https://fhirhub.baubaukota.go.id/sid/mrn/rsud01"
    assert mapped.merges == [Merge((mrn, "000999"), (mrn, "000123"), "MRG[1]-1")]


def test_merge_parameters_name_the_record_that_goes_and_the_one_that_stays() -> None:
    from adapters.rsud.adapter import merge_parameters
    from adapters.rsud.hl7 import parse_payload
    from adapters.rsud.hl7map import Mapper
    from adapters.rsud.mapping import load_mappings

    (parsed,) = parse_payload((GOLDEN / "adt-a40-v25-merge.hl7").read_bytes())
    mappings = load_mappings(ROOT / "mappings" / "rsud")
    facility = mappings.facility("RSUD01")
    assert facility is not None
    mapper = Mapper(
        mappings, facility, Context(ROOT / "mappings", ROOT / "terminology").concept_maps, parsed
    )
    pid = parsed.first("PID")
    assert pid is not None
    patient = mapper.apply(pid, {"resourceType": "Patient"})
    params = merge_parameters(mapper, parsed, patient)
    assert params is not None and not mapper.issues
    by_name = {p["name"]: p for p in params["parameter"]}
    assert by_name["source-patient-identifier"]["valueIdentifier"]["value"] == "000999"
    assert by_name["target-patient-identifier"]["valueIdentifier"]["value"] == "000123"
    assert by_name["result-patient"]["resource"]["resourceType"] == "Patient"


def test_merge_without_mrg_is_an_error_at_mrg() -> None:
    payload = (
        (GOLDEN / "adt-a40-v25-merge.hl7").read_bytes().replace(b"\rMRG|000999^^^RSUD01^MR", b"")
    )
    with pytest.raises(FhirError) as caught:
        canonical(payload)
    assert caught.value.issues[0].expression == ("MRG",)


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_a_bare_external_id_in_pid_2_is_no_record_number_of_the_sender(version: str) -> None:
    # PID-2 (external id, 2.3/2.4) without type or assigning authority says nothing of whose
    # number it is: kept without a system, not taken for the hospital's record number (which
    # the patient index would treat as naming a citizen), and left out where it only repeats
    # a value PID-3 already gives.
    pid = "PID|1|{pid2}|000123^^^RSUD01^MR~7472011505800001^^^DUKCAPIL^NNIDN||DOE^JOHN||19800101|M"
    for pid2, expected in [
        ("EXT-55", [{"value": "EXT-55"}]),
        ("7472011505800001", []),  # the NIK of PID-3 again
        ("X9^^^RSUDLAMA^MR", [{"system": "urn:hl7v2:mrn:rsudlama", "value": "X9"}]),
    ]:
        payload = message(version=version, trigger="A08", pid_extra="").replace(
            b"PID|1||000123^^^RSUD01^MR||DOE^JOHN||19800101|M", pid.format(pid2=pid2).encode()
        )
        patient = one(canonical(payload), "Patient")
        assert ids(patient)[MRN] == "000123"
        assert ids(patient)[NIK] == "7472011505800001"
        rest = [
            {k: v for k, v in i.items() if k in ("system", "value")}
            for i in patient["identifier"]
            if i.get("system") not in (MRN, NIK)
        ]
        assert rest == expected, pid2
        assert [i["value"] for i in patient["identifier"] if i.get("system") == MRN] == ["000123"]


@pytest.mark.parametrize("pid3_nik", [True, False])
def test_a_nik_in_pid_19_joins_the_identifiers(pid3_nik: bool) -> None:
    # PID-19 (SSN number, where old senders put the NIK) adds to PID-3's identifiers; it had
    # replaced the whole list with itself, and the mapping then failed on it
    pid3 = "000123^^^RSUD01^MR" + ("~7472011505800001^^^DUKCAPIL^NNIDN" if pid3_nik else "")
    fields = ["PID", "1", "", pid3, "", "DOE^JOHN", "", "19800101", "M", *[""] * 11]
    fields[19] = "7472011505800001"
    payload = message(trigger="A08").replace(
        b"PID|1||000123^^^RSUD01^MR||DOE^JOHN||19800101|M", "|".join(fields).encode()
    )
    patient = one(canonical(payload), "Patient")
    assert [(i.get("system"), i["value"]) for i in patient["identifier"]] == [
        (MRN, "000123"),
        (NIK, "7472011505800001"),
    ]


def test_pr1_segments_are_the_visits_procedures_under_the_khanza_channels_ids() -> None:
    from fhirhub.ingest.visits import child_id

    payload = message(trigger="A03") + (
        b"\rPR1|1||99.04^Transfusion of packed cells^I9CP||20240105120000"
        b"\rPR1|2||88.38^CT abdomen^I9C||20240105130000"
    )
    bundle = canonical(payload)
    procedures = resources(bundle, "Procedure")
    assert [p["code"]["coding"][0] for p in procedures] == [
        {"system": ICD9, "code": "99.04", "display": "Transfusion of packed cells"},
        {"system": ICD9, "code": "88.38", "display": "CT abdomen"},
    ]
    assert [p["performedDateTime"] for p in procedures] == [
        "2024-01-05T12:00:00+08:00",
        "2024-01-05T13:00:00+08:00",
    ]
    encounter = one(bundle, "Encounter")
    assert {p["status"] for p in procedures} == {"completed"}
    assert {p["encounter"]["reference"] for p in procedures} == {f"Encounter/{encounter['id']}"}
    # the same visit's prosedur_pasien rows pulled from Khanza are the same resources
    assert [p["id"] for p in procedures] == [
        child_id(VISIT, "2024/01/05/000001", "Procedure", n) for n in (0, 1)
    ]


def test_a_pr1_without_a_code_is_an_error_at_pr1_3() -> None:
    with pytest.raises(FhirError) as caught:
        canonical(message(trigger="A03") + b"\rPR1|1||||20240105120000")
    assert caught.value.issues[0].expression == ("PR1[1]-3",)


def test_al1_segments_are_the_patients_allergies_once_however_often_sent() -> None:
    payload = message(trigger="A08") + (
        b"\rAL1|1|DA|70618^Penicillin^RXNORM|SV|Ruam~Sesak napas|20230101\rAL1|2|FA|^Udang|MI"
    )
    bundle = canonical(payload)
    allergies = resources(bundle, "AllergyIntolerance")
    penicillin, shrimp = allergies
    assert penicillin["code"]["coding"][0]["code"] == "70618"
    assert penicillin["category"] == ["medication"]
    assert penicillin["criticality"] == "high"
    assert penicillin["reaction"] == [
        {"manifestation": [{"text": "Ruam"}, {"text": "Sesak napas"}]}
    ]
    assert penicillin["recordedDate"] == "2023-01-01"
    assert shrimp["code"] == {"text": "Udang"}
    assert (shrimp["category"], shrimp["criticality"]) == (["food"], "low")
    patient_url = bundle["entry"][0]["fullUrl"]
    assert penicillin["patient"] == shrimp["patient"] == {"reference": patient_url}
    # the same allergens in another order and another message: the same resources
    again = message("C2", trigger="A31") + (
        b"\rAL1|1|FA|^Udang|MI\rAL1|2|DA|70618^Penicillin^RXNORM|SV|Ruam~Sesak napas|20230101"
    )
    assert {a["id"] for a in resources(canonical(again), "AllergyIntolerance")} == {
        a["id"] for a in allergies
    }
    with pytest.raises(FhirError) as caught:
        canonical(message(trigger="A08") + b"\rAL1|1|DA||SV")
    assert caught.value.issues[0].expression == ("AL1[1]-3",)


def test_an_in1_of_bpjs_is_the_coverage_on_the_card_as_the_khanza_channel_writes_it() -> None:
    from fhirhub.ingest.visits import bpjs_coverage_entry

    def with_in1(in1: str) -> dict[str, Any]:
        return canonical(message(trigger="A04") + b"\r" + in1.encode())

    fields = ["IN1", "1", "JKN^Jaminan Kesehatan Nasional", "BPJS01", "BPJS KESEHATAN"]
    in1 = "|".join([*fields, *[""] * 31, "0001234567890"])  # IN1-36, the card
    bundle = with_in1(in1)
    (entry,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Coverage"]
    subject = one(bundle, "Encounter")["subject"]
    assert entry == bpjs_coverage_entry("0001234567890", subject, "BPJS KESEHATAN")
    assert entry["request"]["ifNoneExist"].endswith("|0001234567890")
    # the card's leading zeros put back; the PID's BPJS identifier when IN1 has no number
    short = with_in1("|".join([*fields, *[""] * 31, "1234567890"]))
    assert [c["subscriberId"] for c in resources(short, "Coverage")] == ["0001234567890"]
    pid_card = message(trigger="A04").replace(
        b"000123^^^RSUD01^MR", b"000123^^^RSUD01^MR~0009876543210^^^BPJS^SN"
    )
    bundle = canonical(pid_card + b"\r" + "|".join(fields).encode())
    assert [
        e["resource"]["subscriberId"]
        for e in bundle["entry"][1:]
        if "subscriberId" in e["resource"]
    ] == ["0009876543210"]
    # another insurer: no Coverage
    other = with_in1("|".join(["IN1", "1", "ASURANSI", "ADM01", "PT ASURANSI MANDIRI"]))
    assert not resources(other, "Coverage")
