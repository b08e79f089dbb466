"""The Puskesmas adapter's own rules, beyond the golden files."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from ingest_factories import city, facility_of, per_patient

from adapters.puskesmas import adapter
from fhirhub.errors import FhirError
from fhirhub.ingest import Context, Message, adapters

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = Context(ROOT / "mappings", ROOT / "terminology")


def bundle(facility: str) -> dict:
    _, bundles = city()
    return per_patient(next(b for b in bundles if facility_of(b) == facility), 1)[0]


def mapped(payload: dict, sender: str | None = None) -> dict:
    message = Message(1, "puskesmas", sender, None, 0, orjson.dumps(payload))
    return adapter.map(message, CONTEXT).bundle


def test_the_adapter_is_found_by_its_entry_point() -> None:
    assert "puskesmas" in adapters.names()
    assert adapters.get("puskesmas").name == "puskesmas"


def test_the_adapter_claims_puskesmas_transactions_only() -> None:
    b = bundle("PKM04")
    assert adapters.claiming(b, CONTEXT) == "puskesmas"
    assert adapters.claiming({**b, "type": "batch"}, CONTEXT) == "puskesmas"  # then refused
    assert adapters.claiming({**b, "type": "collection"}, CONTEXT) is None
    others = [
        e for e in b["entry"] if e["resource"]["resourceType"] not in ("Patient", "Encounter")
    ]
    assert adapters.claiming({**b, "entry": others}, CONTEXT) is None
    encounters = [e for e in b["entry"] if e["resource"]["resourceType"] == "Encounter"]
    assert adapters.claiming({**b, "entry": encounters}, CONTEXT) == "puskesmas"
    assert adapters.claiming({"resourceType": "Bundle", "type": "transaction"}, CONTEXT) is None
    broken = {"resourceType": "Bundle", "type": "transaction", "entry": [1, {"resource": []}]}
    assert adapters.claiming(broken, CONTEXT) is None


def test_times_without_an_offset_are_read_on_the_clinic_clock() -> None:
    b = bundle("PKM02")  # its table: clock +00:00
    encounter = next(
        e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Encounter"
    )
    encounter["period"]["start"] = "2024-03-01T01:00:00"
    out = mapped(b)
    start = next(
        e["resource"]["period"]["start"]
        for e in out["entry"]
        if e["resource"]["resourceType"] == "Encounter"
    )
    assert start == "2024-03-01T01:00:00+00:00"


def test_a_patient_without_the_clinic_record_number_is_refused() -> None:
    b = bundle("PKM01")
    patient = b["entry"][0]["resource"]
    patient["identifier"] = [i for i in patient["identifier"] if "/sid/mrn/" not in i["system"]]
    with pytest.raises(FhirError) as caught:
        mapped(b, sender="PKM01")
    assert caught.value.issues[0].code == "required"
    assert caught.value.issues[0].expression == ("Bundle.entry[0].resource.identifier",)


def test_a_bundle_from_nobody_known_is_refused() -> None:
    b = bundle("PKM01")
    for entry in b["entry"]:
        for i in entry["resource"].get("identifier") or []:
            i["system"] = i["system"].replace("pkm01", "pkm99")
            i["system"] = i["system"].replace("encounter/10085100", "encounter/99999999")
    with pytest.raises(FhirError) as caught:
        mapped(b)
    assert caught.value.issues[0].code == "business-rule"


def test_the_encounter_identifier_names_the_puskesmas_too() -> None:
    b = bundle("PKM01")
    patient = b["entry"][0]["resource"]
    patient["identifier"] = [i for i in patient["identifier"] if "/sid/mrn/" not in i["system"]]
    with pytest.raises(FhirError) as caught:  # found as PKM01's, whose Patients carry an MRN
        mapped(b)
    assert caught.value.issues[0].code == "required"
    assert caught.value.issues[0].expression == ("Bundle.entry[0].resource.identifier",)
