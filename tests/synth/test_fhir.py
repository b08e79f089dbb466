"""Every emitted FHIR resource parses with fhir.resources (R4B models)."""

from __future__ import annotations

from pathlib import Path

import orjson
from fhir.resources.R4B import get_fhir_model_class

from fhirhub.synth import demo_bundles


def _parse(resource: dict) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_every_bundle_and_resource_parses(small_city_dir: Path) -> None:
    files = sorted(small_city_dir.glob("reference/*.json"))
    files += sorted(small_city_dir.glob("puskesmas/*/*.json"))
    assert len(files) > 17
    n = 0
    for f in files:
        bundle = orjson.loads(f.read_bytes())
        assert bundle["type"] == "transaction"
        _parse(bundle)  # validates every entry's resource with its own model
        n += len(bundle["entry"])
    assert n > 1000


def test_every_satusehat_resource_parses(small_city_dir: Path) -> None:
    n = 0
    for f in sorted(small_city_dir.glob("satusehat/**/*.ndjson")):
        for line in f.read_bytes().splitlines():
            r = orjson.loads(line)
            assert r["resourceType"] == f.stem
            _parse(r)
            n += 1
    assert n > 100


def test_satusehat_patients_carry_ihs_numbers(small_city_dir: Path) -> None:
    for line in (small_city_dir / "satusehat" / "Patient.ndjson").read_bytes().splitlines():
        p = orjson.loads(line)
        assert p["id"][0] == "P" and len(p["id"]) == 12 and p["id"][1:].isdigit()


def test_demo_bundles_reference_first_then_conditional_patients() -> None:
    bundles = list(demo_bundles(120, 3))
    ref = bundles[0]
    assert all(e["request"]["method"] == "PUT" for e in ref["entry"])
    kinds = {e["resource"]["resourceType"] for e in ref["entry"]}
    assert {"Organization", "Location", "Practitioner", "ConceptMap"} <= kinds
    orgs = [e for e in ref["entry"] if e["resource"]["resourceType"] == "Organization"]
    assert len(orgs) == 1 + 17 + 1  # Dinkes, 17 Puskesmas, RSUD
    for b in bundles[1:]:
        urls = {e["fullUrl"] for e in b["entry"]}
        assert all(u.startswith("urn:uuid:") for u in urls)
        assert len(urls) == len(b["entry"])
        for e in b["entry"]:
            r = e["resource"]
            if r["resourceType"] == "Patient":
                assert e["request"]["ifNoneExist"].startswith("identifier=")
            ref_ = r.get("subject", r.get("patient", {})).get("reference")
            if ref_ is not None:
                assert ref_ in urls


def test_patients_carry_baubau_village_codes(small_city_dir: Path) -> None:
    coded = total = 0
    for f in sorted(small_city_dir.glob("puskesmas/*/*.json")):
        for e in orjson.loads(f.read_bytes())["entry"]:
            r = e["resource"]
            if r["resourceType"] != "Patient":
                continue
            total += 1
            ext = r["address"][0].get("extension")
            if ext:
                village = next(x["valueCode"] for x in ext[0]["extension"] if x["url"] == "village")
                assert village.startswith("7472") and len(village) == 10
                coded += 1
    assert coded / total > 0.9


def test_business_identifiers_are_unique(small_city_dir: Path) -> None:
    seen: set[tuple[str, str]] = set()
    for f in sorted(small_city_dir.glob("puskesmas/*/*.json")):
        for e in orjson.loads(f.read_bytes())["entry"]:
            r = e["resource"]
            if r["resourceType"] in ("Patient", "Encounter"):
                ident = r["identifier"][0]
                key = (ident["system"], ident["value"])
                assert key not in seen, key
                seen.add(key)
    assert len(seen) > 100
