"""Golden tests: each Puskesmas payload variant in, the expected canonical Bundle out.

Inputs are small Bundles of the synthetic city (``golden/*.input.json``); the expected output
(``*.expected.json``) is what the adapter and the canonical pass make of them, before the
Provenance is added. ``FHIRHUB_UPDATE_GOLDEN=1`` rewrites the expected files; review the diff.
"""

from __future__ import annotations

import json
import os
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


def canonical(payload: bytes) -> dict[str, Any]:
    pipeline = Pipeline(None, Context(ROOT / "mappings", ROOT / "terminology"))  # type: ignore[arg-type]
    message = Message(0, "puskesmas", None, "application/fhir+json", 0, payload)
    return pipeline.canonical(message).bundle


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    payload = (GOLDEN / f"{case}.input.json").read_bytes()
    out = canonical(payload)
    expected_path = GOLDEN / f"{case}.expected.json"
    if os.environ.get("FHIRHUB_UPDATE_GOLDEN") == "1":
        expected_path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    assert out == orjson.loads(expected_path.read_bytes())


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_the_golden_files_show_what_the_canonical_form_promises() -> None:
    """The expected files are reviewed by eye; these checks say what to look for."""
    utc = canonical((GOLDEN / "pkm02-utc.input.json").read_bytes())
    assert all(e["period"]["start"].endswith("+08:00") for e in resources(utc, "Encounter"))
    local = canonical((GOLDEN / "pkm05-local-codes.input.json").read_bytes())
    for condition in resources(local, "Condition"):
        first, second = condition["code"]["coding"]
        assert first["system"] == "http://hl7.org/fhir/sid/icd-10"
        assert second["system"].endswith("/CodeSystem/diagnosa-lokal")
    messy = canonical((GOLDEN / "pkm04-messy-clerk.input.json").read_bytes())
    (patient,) = resources(messy, "Patient")
    assert patient["telecom"][0]["value"] == "+6281234567890"
    nik = next(i for i in patient["identifier"] if i["system"].endswith("/nik"))
    assert len(nik["value"]) == 16 and nik["value"].isdigit()
    code = patient["address"][0]["extension"][0]["extension"]
    assert {"url": "village", "valueCode": "7472021004"} in code  # Wangkanapi, misspelt
    codes = [c["code"]["coding"][0]["code"] for c in resources(messy, "Condition")]
    assert codes == ["I10", "I10"]  # sent as "i10." and "I10.0"
    for e in messy["entry"]:
        if e["resource"]["resourceType"] == "Encounter":
            assert e["request"]["method"] == "PUT"
        if e["resource"]["resourceType"] in ("Condition", "Observation"):
            assert e["request"]["method"] == "PUT"
