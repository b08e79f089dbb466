"""Where R4 and R4B differ, R4 wins (docs/adr/0002): the types whose R4 definitions differ from
fhir.resources' R4B models are checked against the committed R4 tables, not the models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

H = {"content-type": "application/fhir+json"}
ROOT = Path(__file__).resolve().parents[2]
TABLE = json.loads((ROOT / "fhirhub/model/data/r4_elements.json").read_text())
CODES = json.loads((ROOT / "fhirhub/model/data/r4_required_codes.json").read_text())

# Found by scripts/build_model_tables.py comparing R4's StructureDefinitions with R4B's models.
R4_CHECKED_RESOURCES = {
    # changed shape in R4B
    "ActivityDefinition",  # subjectCanonical is R4B only
    "Evidence",  # R4B's is a different resource (variableDefinition, statistic, ...)
    "EvidenceVariable",  # likewise (characteristic required in R4, handling R4B only, ...)
    "PlanDefinition",  # subjectCanonical is R4B only
    # dropped by R4B
    "EffectEvidenceSynthesis",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "RiskEvidenceSynthesis",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
}
R4_CHECKED_DATA_TYPES = {
    "Extension",  # value[x]: Meta in R4; CodeableReference, RatioRange in R4B
    "ElementDefinition",  # the same for defaultValue[x], fixed[x], pattern[x], example.value[x]
    "MarketingStatus",  # country and dateRange are required in R4 only
    "SubstanceAmount",  # R4 only
}

# The official R4 examples (hl7.fhir.r4.examples 4.0.1, CC0).
EVIDENCE_EXAMPLE = {
    "resourceType": "Evidence",
    "id": "example",
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">[Put rendering here]</div>',
    },
    "status": "draft",
    "exposureBackground": {"reference": "EvidenceVariable/example"},
}
EVIDENCE_VARIABLE_EXAMPLE = {
    "resourceType": "EvidenceVariable",
    "id": "example",
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">[Put rendering here]</div>',
    },
    "status": "draft",
    "characteristic": [{"definitionCodeableConcept": {"text": "Diabetic patients over 65"}}],
}
SAMPLE = {
    "boolean": True,
    "integer": 1,
    "positiveInt": 1,
    "unsignedInt": 0,
    "decimal": 1.5,
    "date": "2020-01-01",
    "dateTime": "2020-01-01T10:00:00+08:00",
    "instant": "2020-01-01T10:00:00Z",
    "time": "10:00:00",
    "oid": "urn:oid:1.2.3",
    "uuid": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
    "uri": "http://example.org/x",
    "url": "http://example.org/x",
    "canonical": "http://example.org/x",
    "base64Binary": "AAAA",
    "xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
}


def _minimal(type_name: str, depth: int = 0) -> dict[str, Any]:
    """An instance of ``type_name`` with every required element (R4), from the table."""
    props = TABLE["elements"][type_name]
    out: dict[str, Any] = {}
    choices_done: set[str] = set()
    for key, (type_, repeats, required, choice) in props.items():
        if not required or (choice and choice in choices_done):
            continue
        choices_done.add(choice)
        value = _sample(type_name, key, type_, depth)
        out[key] = [value] if repeats else value
    if not out:  # an element must have content
        out["extension"] = [{"url": "http://example.org/x", "valueString": "x"}]
    return out


def _sample(parent: str, key: str, type_: str, depth: int) -> Any:
    url = CODES["bindings"].get(parent, {}).get(key)
    if url:
        return CODES["valueSets"][url][0]
    if type_ in SAMPLE:
        return SAMPLE[type_]
    if type_ in TABLE["primitives"]:
        return "x"
    return _minimal(type_, depth + 1)


def _build_model_tables() -> Any:
    spec = importlib.util.spec_from_file_location("bmt", ROOT / "scripts/build_model_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # compares 146 R4B models, field by field (about 5 s)
def test_the_list_is_what_r4_and_r4b_differ_in() -> None:
    checked = TABLE["checkedAgainstR4"]
    assert set(checked["resources"]) == R4_CHECKED_RESOURCES
    assert set(checked["dataTypes"]) == R4_CHECKED_DATA_TYPES
    # and the committed table is what the comparison finds with the installed fhir.resources
    bmt = _build_model_tables()
    elements = TABLE["elements"]
    resource_types = json.loads((ROOT / "fhirhub/model/data/r4_resource_types.json").read_text())
    types = resource_types["resourceTypes"]
    data_types = [
        name
        for name in elements
        if "." not in name and name not in types and name not in TABLE["primitives"]
    ]
    assert bmt.r4b_differences(elements, data_types) == checked["dataTypes"]
    assert bmt.r4b_differences(elements, types) == checked["resources"]


def test_the_official_evidence_examples_are_stored(client: TestClient) -> None:
    for example in (EVIDENCE_EXAMPLE, EVIDENCE_VARIABLE_EXAMPLE):
        r = client.put(f"/fhir/{example['resourceType']}/example", json=example, headers=H)
        assert r.status_code == 201, r.text


def test_an_r4b_shaped_evidence_is_refused(client: TestClient) -> None:
    r4b = {
        "resourceType": "Evidence",
        "status": "draft",
        "variableDefinition": [{"variableRole": {"text": "population"}}],
    }
    r = client.post("/fhir/Evidence", json=r4b, headers=H)
    assert r.status_code == 400, r.text
    found = {(i["code"], i["expression"][0]) for i in r.json()["issue"]}
    assert found == {
        ("structure", "Evidence.variableDefinition"),
        ("required", "Evidence.exposureBackground"),
    }


@pytest.mark.parametrize("res_type", sorted(R4_CHECKED_RESOURCES))
def test_each_type_is_checked_against_r4(client: TestClient, res_type: str) -> None:
    minimal = {"resourceType": res_type, **_minimal(res_type)}
    r = client.post(f"/fhir/{res_type}", json=minimal, headers=H)
    assert r.status_code == 201, (minimal, r.text)
    # what R4B has and R4 has not is unknown; a required element missing is said
    r4b_only = [
        d.split(" ")[0].removeprefix(res_type + ".")
        for d in TABLE["checkedAgainstR4"]["resources"][res_type]
        if d.endswith("is R4B only") and d.count(".") == 1
    ] or ["notAnElement"]
    bad = {**minimal, **{key: {"text": "x"} for key in r4b_only}}
    required = [k for k, (_t, _r, req, choice) in TABLE["elements"][res_type].items() if req]
    if required:
        bad.pop(required[0], None)
    r = client.post(f"/fhir/{res_type}", json=bad, headers=H)
    assert r.status_code == 400, r.text
    found = {i["expression"][0] for i in r.json()["issue"]}
    assert {f"{res_type}.{key}" for key in r4b_only} <= found
    if required:
        choice = TABLE["elements"][res_type][required[0]][3]
        assert f"{res_type}.{choice + '[x]' if choice else required[0]}" in found


def test_r4_only_types_get_primitive_formats_checked(client: TestClient) -> None:
    body = {"resourceType": "MedicinalProduct", "name": [{"productName": "x"}], "id": "m1"}
    assert client.put("/fhir/MedicinalProduct/m1", json=body, headers=H).status_code == 201
    bad = {**body, "specialMeasures": [""], "combinedPharmaceuticalDoseForm": [{"text": "x"}]}
    r = client.put("/fhir/MedicinalProduct/m1", json=bad, headers=H)
    assert r.status_code == 400
    found = {i["expression"][0] for i in r.json()["issue"]}
    assert found == {
        "MedicinalProduct.specialMeasures[0]",
        "MedicinalProduct.combinedPharmaceuticalDoseForm",
    }


def test_element_definition_values_are_r4s(client: TestClient) -> None:
    sd = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/sd",
        "name": "X",
        "status": "draft",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "differential": {
            "element": [{"path": "Patient.meta", "fixedMeta": {"versionId": "1"}}],
        },
    }
    assert client.post("/fhir/StructureDefinition", json=sd, headers=H).status_code == 201
    sd["differential"]["element"][0] = {
        "path": "Patient.meta",
        "patternCodeableReference": {"concept": {"text": "x"}},
    }
    r = client.post("/fhir/StructureDefinition", json=sd, headers=H)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == [
        "StructureDefinition.differential.element[0].patternCodeableReference"
    ]
