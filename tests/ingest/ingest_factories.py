"""Plain functions that make ingest test data from the synthetic city (docs/synth.md)."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine

from fhirhub.services import transaction
from fhirhub.services.writes import Writer
from fhirhub.storage.repository import ResourceRepository
from fhirhub.synth import demo_bundles


@lru_cache(maxsize=2)
def city(persons: int = 1000, seed: int = 3) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The city's reference Bundle and its Puskesmas Bundles."""
    bundles = list(demo_bundles(persons=persons, seed=seed))
    return bundles[0], bundles[1:]


def per_patient(bundle: dict[str, Any], encounters: int | None = None) -> list[dict[str, Any]]:
    """Split a Puskesmas Bundle into one small Bundle per Patient (its first ``encounters``
    visits, with their Conditions, Observations and Immunizations)."""
    entries = bundle["entry"]
    patients = [e for e in entries if e["resource"]["resourceType"] == "Patient"]
    by_subject: dict[str, list[dict[str, Any]]] = {p["fullUrl"]: [] for p in patients}
    for e in entries:
        subject = (e["resource"].get("subject") or e["resource"].get("patient") or {}).get(
            "reference"
        )
        if subject in by_subject:
            by_subject[subject].append(e)
    out = []
    for p in patients:
        rest = by_subject[p["fullUrl"]]
        if encounters is not None:
            keep = {e["fullUrl"] for e in rest if e["resource"]["resourceType"] == "Encounter"}
            keep = set(
                sorted(keep, key=lambda u: [x["fullUrl"] for x in rest].index(u))[:encounters]
            )
            rest = [
                e
                for e in rest
                if e["fullUrl"] in keep
                or (e["resource"].get("encounter") or {}).get("reference") in keep
            ]
            for e in rest:  # diagnoses of dropped conditions would dangle
                if e["resource"]["resourceType"] == "Encounter":
                    kept = {x["fullUrl"] for x in rest}
                    diag = [
                        d
                        for d in e["resource"].get("diagnosis", [])
                        if d["condition"]["reference"] in kept
                    ]
                    if diag:
                        e["resource"]["diagnosis"] = diag
                    else:
                        e["resource"].pop("diagnosis", None)
        out.append(
            {"resourceType": "Bundle", "type": "transaction", "entry": copy.deepcopy([p, *rest])}
        )
    return out


def facility_of(bundle: dict[str, Any]) -> str:
    for e in bundle["entry"]:
        for ident in e["resource"].get("identifier", []):
            if "/sid/mrn/" in ident.get("system", ""):
                return ident["system"].rsplit("/", 1)[1].upper()
    raise ValueError("no Puskesmas record number")


def load_reference(engine: Engine) -> None:
    """Store the city's Organizations, Locations, Practitioners and ConceptMaps."""
    reference, _ = city()
    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn))
        transaction.process(writer, reference, base_url="urn:test", get=lambda u: (400, None))
        writer.flush()
