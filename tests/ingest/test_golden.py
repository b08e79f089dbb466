"""Golden tests: each Puskesmas payload variant in, the expected canonical Bundle out.

Inputs are small Bundles of the synthetic city (``golden/*.input.json``), each edited so that
it needs the transformation it is named after; the expected output (``*.expected.json``) is what
the adapter and the canonical pass make of them, before the Provenance is added.

The expected files are a record of the code's output, so they cannot be the proof that it is
right: every case also has hand-written checks of the fields that matter (``CHECKS``), worked
out from the input and docs/canonical.md, not read from the recorded file.

``FHIRHUB_UPDATE_GOLDEN=1`` rewrites the expected files and then fails the run (review the diff,
run again without it); under ``CI=true`` it is refused.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirhub.ingest import Message
from fhirhub.ingest.adapters import Context
from fhirhub.ingest.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name.removesuffix(".input.json") for p in GOLDEN.glob("*.input.json"))

ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
NIK = "https://fhir.kemkes.go.id/id/nik"
NIK_IBU = "https://fhir.kemkes.go.id/id/nik-ibu"
ADMINISTRATIVE_CODE = "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode"
LOCAL = "https://fhirhub.baubaukota.go.id/CodeSystem/"
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def canonical(payload: bytes) -> dict[str, Any]:
    pipeline = Pipeline(None, Context(ROOT / "mappings", ROOT / "terminology"))  # type: ignore[arg-type]
    message = Message(0, "puskesmas", None, "application/fhir+json", 0, payload)
    return pipeline.canonical(message).bundle


def case_output(case: str) -> dict[str, Any]:
    return canonical((GOLDEN / f"{case}.input.json").read_bytes())


def compare_or_record(out: dict[str, Any], expected_path: Path) -> None:
    """Compare with the recorded file; with FHIRHUB_UPDATE_GOLDEN=1 record it and fail."""
    if os.environ.get("FHIRHUB_UPDATE_GOLDEN") == "1":
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("FHIRHUB_UPDATE_GOLDEN=1 is refused under CI=true", pytrace=False)
        expected_path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
        pytest.fail(
            f"{expected_path.name} was rewritten from the code under test: review the diff, "
            "then run again without FHIRHUB_UPDATE_GOLDEN",
            pytrace=False,
        )
    assert out == orjson.loads(expected_path.read_bytes())


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    compare_or_record(case_output(case), GOLDEN / f"{case}.expected.json")


def test_recording_a_golden_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.expected.json"
    monkeypatch.setenv("FHIRHUB_UPDATE_GOLDEN", "1")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.fail.Exception, match="rewritten"):
        compare_or_record({"resourceType": "Bundle"}, path)
    assert orjson.loads(path.read_bytes()) == {"resourceType": "Bundle"}
    monkeypatch.setenv("CI", "true")
    path.unlink()
    with pytest.raises(pytest.fail.Exception, match="refused"):
        compare_or_record({"resourceType": "Bundle"}, path)
    assert not path.exists()


# --- hand-written checks, one per case --------------------------------------------------------


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def entries(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def identifier(patient: dict[str, Any], system: str) -> str | None:
    return next((i["value"] for i in patient["identifier"] if i["system"] == system), None)


def village(patient: dict[str, Any]) -> dict[str, str]:
    (code,) = [e for e in patient["address"][0]["extension"] if e["url"] == ADMINISTRATIVE_CODE]
    return {e["url"]: e["valueCode"] for e in code["extension"]}


def times(node: Any) -> list[str]:
    """Every dateTime/instant string in a resource or Bundle."""
    if isinstance(node, dict):
        return [t for v in node.values() for t in times(v)]
    if isinstance(node, list):
        return [t for v in node for t in times(v)]
    return [node] if isinstance(node, str) and _DATETIME.match(node) else []


def check_pkm01(out: dict[str, Any]) -> None:
    """Times sent at +07:00 and in UTC with milliseconds, diagnoses typed j069 and " J06.9.":
    the same instants at +08:00, the fraction kept; ICD-10 as J06.9."""
    first, second = resources(out, "Encounter")
    assert first["period"] == {
        "start": "2024-05-12T11:18:00+08:00",  # sent as 10:18:00+07:00
        "end": "2024-05-12T12:06:00+08:00",
    }
    assert second["period"] == {
        "start": "2026-01-10T12:48:00.250+08:00",  # sent as 04:48:00.250Z
        "end": "2026-01-10T13:46:00.250+08:00",
    }
    conditions = resources(out, "Condition")
    assert [c["code"]["coding"] for c in conditions] == [[{"system": ICD10, "code": "J06.9"}]] * 2
    assert [c["recordedDate"] for c in conditions] == [
        "2024-05-12T11:18:00+08:00",
        "2026-01-10T12:48:00.250+08:00",
    ]
    for obs in resources(out, "Observation"):
        assert obs["effectiveDateTime"] == "2026-01-10T12:48:00.250+08:00"
        assert obs["issued"] == "2026-01-10T13:46:00.250+08:00"


def check_pkm02(out: dict[str, Any]) -> None:
    """Times sent in UTC (+00:00) are the same instants at +08:00."""
    (encounter,) = resources(out, "Encounter")
    assert encounter["period"] == {
        "start": "2024-02-02T10:56:00+08:00",  # sent as 02:56:00+00:00
        "end": "2024-02-02T11:39:00+08:00",
    }
    (condition,) = resources(out, "Condition")
    assert condition["recordedDate"] == "2024-02-02T10:56:00+08:00"
    (patient,) = resources(out, "Patient")
    assert patient["telecom"][0]["value"] == "+6281332842046"  # sent as +62 813-3284-2046


def check_pkm03(out: dict[str, Any]) -> None:
    """An address naming its kelurahan only in text ("Kel. Lipu") gets Lipu's Kemendagri code."""
    (patient,) = resources(out, "Patient")
    assert patient["address"][0]["text"] == "Jl. Wa Ode Wau No. 93, Kel. Lipu, Kota Baubau"
    code = village(patient)
    assert code["village"] == "7472011014"  # Lipu, Kec. Betoambari
    assert code["district"] == "747201"
    assert (code["province"], code["city"]) == ("74", "7472")
    assert patient["telecom"][0]["value"] == "+6287856570376"  # sent as 0878-5657-0376


def check_pkm04(out: dict[str, Any]) -> None:
    """A clerk's typing: a dotted NIK, a dashed phone, a misspelt kelurahan, i10. and I10.0."""
    (patient,) = resources(out, "Patient")
    assert patient["telecom"][0]["value"] == "+6281234567890"  # sent as 0812-3456-7890
    assert identifier(patient, NIK) == "7373013005750001"  # sent as 737301.300575.0001
    assert village(patient)["village"] == "7472021004"  # Wangkanapi, misspelt
    codes = [c["code"]["coding"][0]["code"] for c in resources(out, "Condition")]
    assert codes == ["I10", "I10"]  # sent as "i10." and "I10.0" (I10 has no subdivisions)
    first = resources(out, "Encounter")[0]
    assert first["period"]["start"] == "2024-02-18T10:14:00+08:00"  # sent as 02:14:00+00:00


def check_pkm05(out: dict[str, Any]) -> None:
    """Local codes translated by the ConceptMaps; the standard coding first, the local kept."""
    conditions = [c["code"]["coding"] for c in resources(out, "Condition")]
    assert conditions == [
        [
            {"system": ICD10, "code": "J06.9"},
            {"system": LOCAL + "diagnosa-lokal", "code": "ISPA"},
        ],
        [
            {"system": ICD10, "code": "E78.5"},
            {"system": LOCAL + "diagnosa-lokal", "code": "L-E785"},
        ],
    ]
    observations = [o["code"]["coding"] for o in resources(out, "Observation")]
    assert [[(c["system"], c["code"]) for c in o] for o in observations] == [
        [(LOINC, "85354-9"), (LOCAL + "pemeriksaan-lokal", "TD")],
        [(LOINC, "85354-9"), (LOCAL + "pemeriksaan-lokal", "TD")],
        [(LOINC, "29463-7"), (LOCAL + "pemeriksaan-lokal", "BB")],
    ]


def check_pkm07(out: dict[str, Any]) -> None:
    """Immunisations: each gets an id derived from its visit's SATUSEHAT identifier (a re-sent
    visit overwrites, never duplicates), two vaccines of one visit get different ids, times
    sent on the clinic's clock without an offset are read at +08:00."""
    immunizations = entries(out, "Immunization")
    assert len(immunizations) == 2
    ids = [e["resource"]["id"] for e in immunizations]
    assert len(set(ids)) == 2
    for e in immunizations:
        assert e["request"] == {"method": "PUT", "url": f"Immunization/{e['resource']['id']}"}
    assert [e["resource"]["occurrenceDateTime"] for e in immunizations] == [
        "2026-01-04T12:38:00+08:00",  # sent as 2026-01-04T12:38:00
        "2026-01-04T12:41:30.5+08:00",  # sent as 2026-01-04T12:41:30.5
    ]
    assert [e["resource"]["vaccineCode"]["coding"][0]["code"] for e in immunizations] == [
        "08",
        "89",
    ]
    (patient_entry,) = entries(out, "Patient")
    second_visit = entries(out, "Encounter")[1]
    for e in immunizations:
        assert e["resource"]["patient"]["reference"] == patient_entry["fullUrl"]
        assert e["resource"]["encounter"]["reference"] == second_visit["fullUrl"]
    assert identifier(patient_entry["resource"], NIK_IBU) == "7404057007880001"
    # the same visit sent again maps to the same ids
    again = case_output("pkm07-immunization")
    assert [e["resource"]["id"] for e in entries(again, "Immunization")] == ids


def check_newborn(out: dict[str, Any]) -> None:
    """A newborn without a NIK of its own is identified by the mother's (nik-ibu), typed with
    dots: the 16 digits, under nik-ibu, never moved to nik."""
    (patient,) = resources(out, "Patient")
    assert identifier(patient, NIK_IBU) == "7472015402980001"  # sent as 7472.0154.0298.0001
    assert identifier(patient, NIK) is None
    assert identifier(patient, "https://fhirhub.baubaukota.go.id/sid/mrn/pkm01") == "000046"
    assert patient["gender"] == "male"  # sent as L
    assert patient["birthDate"] == "2024-05-19"


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "pkm01-wita-icd10": check_pkm01,
    "pkm02-utc": check_pkm02,
    "pkm03-kelurahan-in-text": check_pkm03,
    "pkm04-messy-clerk": check_pkm04,
    "pkm05-local-codes": check_pkm05,
    "pkm07-immunization": check_pkm07,
    "newborn-nik-ibu": check_newborn,
}


def test_every_golden_case_has_hand_written_checks() -> None:
    assert sorted(CHECKS) == CASES


@pytest.mark.parametrize("case", CASES)
def test_golden_case_does_what_it_is_named_after(case: str) -> None:
    out = case_output(case)
    CHECKS[case](out)
    # and in every case: visits and their children are PUTs to derived ids, all times at WITA
    for e in out["entry"]:
        rtype = e["resource"]["resourceType"]
        if rtype in ("Encounter", "Condition", "Observation", "Immunization"):
            assert e["request"] == {"method": "PUT", "url": f"{rtype}/{e['resource']['id']}"}
    assert all(t.endswith("+08:00") for t in times(out)), times(out)
