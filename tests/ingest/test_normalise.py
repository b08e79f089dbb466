"""The canonical pass over whole resources and Bundles (fhirhub.ingest.normalise): which
elements it rewrites, which it leaves alone, and the references it reports as dangling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from fhirhub.ingest import canonical as c
from fhirhub.ingest.normalise import (
    canonicalise_bundle,
    canonicalise_resource,
    unresolved_references,
)
from fhirhub.ingest.regions import load_regions
from fhirhub.ingest.terminology import load_terminology

ROOT = Path(__file__).resolve().parents[2]
REGIONS = load_regions(ROOT / "terminology" / "regions")
MAPS = load_terminology(ROOT / "terminology")
LIPU = "7472011014"


def parsed(value: Any) -> Any:
    """As a source sends it: parsed from JSON text (no string shared with this module)."""
    return orjson.loads(orjson.dumps(value))


def canonical(resource: dict[str, Any]) -> dict[str, Any]:
    resource = parsed(resource)
    canonicalise_resource(resource, REGIONS, MAPS)
    return resource


def test_every_identifier_is_made_canonical_even_after_one_without_a_value() -> None:
    patient = canonical(
        {
            "resourceType": "Patient",
            "identifier": [
                {"system": c.NIK},  # no value: skipped, not the end of the list
                {"system": c.NIK, "value": 7472014501900001},  # not a string: kept
                {"system": "https://example.org/other", "value": "0001-2"},
                {"system": c.NIK, "value": "7472.0145.0190.0001"},
                {"system": c.BPJS_CARD, "value": "12345"},
            ],
        }
    )
    assert [i.get("value") for i in patient["identifier"]] == [
        None,
        7472014501900001,
        "0001-2",  # a system without a rule is kept as sent
        "7472014501900001",
        "0000000012345",
    ]


def test_only_phone_and_sms_contact_points_are_rewritten() -> None:
    patient = canonical(
        {
            "resourceType": "Patient",
            "telecom": [
                {"system": "other", "value": "0812-3456-7890"},
                {"system": "phone", "value": "0812-3456-7890"},
                {"system": "sms", "value": "62 812 3456 7890"},
                "not a contact point",
            ],
        }
    )
    assert [t["value"] if isinstance(t, dict) else t for t in patient["telecom"]] == [
        "0812-3456-7890",
        "+6281234567890",
        "+6281234567890",
        "not a contact point",
    ]


def test_the_gender_of_a_patient_and_of_its_contacts() -> None:
    patient = canonical(
        {"resourceType": "Patient", "gender": "L", "contact": [{"gender": "Perempuan"}, "x"]}
    )
    assert patient["gender"] == "male"
    assert patient["contact"][0]["gender"] == "female"
    unknown = canonical({"resourceType": "Patient", "gender": "waria"})
    assert unknown["gender"] == "waria"  # kept as sent: validation decides


def test_a_kelurahan_named_in_text_gets_its_code_beside_other_extensions() -> None:
    other = {"url": "https://example.org/rt-rw", "valueString": "007/002"}
    # a URL that sorts after the administrativeCode's: only equality means "already coded"
    local = {
        "url": "https://fhirhub.baubaukota.go.id/StructureDefinition/dusun",
        "valueString": "II",
    }
    patient = canonical(
        {
            "resourceType": "Patient",
            "address": [{"extension": [other, local], "text": "Jl. Wa Ode Wau 93, Kel. Lipu"}],
        }
    )
    (address,) = patient["address"]
    assert address["extension"][:2] == [other, local]
    (code,) = [e for e in address["extension"] if e["url"] == c.ADMINISTRATIVE_CODE]
    assert {"url": "village", "valueCode": LIPU} in code["extension"]


def test_a_kelurahan_in_an_address_line_is_found_too() -> None:
    org = canonical(
        {"resourceType": "Organization", "address": {"line": ["Jl. Anoa 5", "Kel. Lipu"]}}
    )
    (code,) = org["address"]["extension"]
    assert {"url": "village", "valueCode": LIPU} in code["extension"]


def test_an_address_that_has_its_code_is_left_alone() -> None:
    coded = {
        "url": c.ADMINISTRATIVE_CODE,
        "extension": [{"url": "village", "valueCode": "7472021004"}],
    }
    address = {"extension": [coded], "text": "Kel. Lipu"}  # the text disagrees: the code wins
    patient = canonical({"resourceType": "Patient", "address": [address]})
    assert patient["address"] == [address]


def test_icd10_codes_anywhere_in_a_resource_but_only_icd10() -> None:
    encounter = canonical(
        {
            "resourceType": "Encounter",
            "reasonCode": [
                {"coding": [{"system": c.ICD10, "code": "j069"}]},
                {"coding": [{"system": "http://snomed.info/sct", "code": "i10."}]},
                {"coding": [{"system": c.ICD10}, {"system": c.ICD10, "code": 10}]},
            ],
            "extension": [
                {"valueCodeableConcept": {"coding": [{"system": c.ICD10, "code": "e119"}]}}
            ],
        }
    )
    assert encounter["reasonCode"] == [
        {"coding": [{"system": c.ICD10, "code": "J06.9"}]},
        {"coding": [{"system": "http://snomed.info/sct", "code": "i10."}]},
        {"coding": [{"system": c.ICD10}, {"system": c.ICD10, "code": 10}]},
    ]
    assert encounter["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "E11.9"


def test_people_parts_are_not_applied_to_other_resources() -> None:
    observation = canonical(
        {
            "resourceType": "Observation",
            "identifier": [{"system": c.NIK, "value": "7472.0145.0190.0001"}],
            "gender": "L",
            "effectiveDateTime": "2024-05-12T03:18:00Z",
        }
    )
    assert observation["identifier"][0]["value"] == "7472.0145.0190.0001"
    assert observation["gender"] == "L"
    assert observation["effectiveDateTime"] == "2024-05-12T11:18:00+08:00"


def test_every_entry_of_a_bundle_is_made_canonical() -> None:
    bundle = parsed(
        {
            "resourceType": "Bundle",
            "entry": [
                "not an entry",
                {"request": {"method": "DELETE"}},
                {"resource": {"resourceType": "Patient", "gender": "P"}},
                {"resource": {"resourceType": "Practitioner", "gender": "Pria"}},
            ],
        }
    )
    canonicalise_bundle(bundle, REGIONS, MAPS)
    assert [e["resource"]["gender"] for e in bundle["entry"][2:]] == ["female", "male"]


def test_dangling_urn_references_are_reported_with_their_path() -> None:
    bundle = parsed(
        {
            "resourceType": "Bundle",
            "entry": [
                {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}},
                {
                    "fullUrl": "urn:uuid:e",
                    "resource": {
                        "resourceType": "Encounter",
                        "subject": {"reference": "urn:uuid:p"},  # resolves
                        "participant": [{"individual": {"reference": "urn:uuid:gone"}}],
                        "serviceProvider": {"reference": "Organization/org-pkm01"},  # not urn
                    },
                },
                "not an entry",
                {"request": {"method": "DELETE", "url": "Patient/x"}},
                {
                    "resource": {
                        "resourceType": "Condition",
                        "subject": {"reference": "urn:oid:1.2.3"},
                        "encounter": {"reference": "urn:uuid:e"},
                    }
                },
            ],
        }
    )
    issues = unresolved_references(bundle)
    assert [(i.code, i.expression) for i in issues] == [
        ("not-found", ("Bundle.entry[1].resource.participant[0].individual",)),
        ("not-found", ("Bundle.entry[4].resource.subject",)),
    ]
    assert unresolved_references({"resourceType": "Bundle"}) == []
