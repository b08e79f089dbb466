"""A Puskesmas Bundle in, the canonical transaction Bundle out.

- The sender is the Puskesmas whose record-number system the Patients use, or whose SATUSEHAT
  encounter identifier system the Encounters carry (or the one named by the ``sender`` the
  message came with; the two must agree). A transaction Bundle posted to ``POST /fhir`` with
  such records is claimed by this adapter and goes through the inbox.
- Every Patient carries the Puskesmas's record number, in its style.
- Times sent without an offset are read on the Puskesmas's clock (``clock`` in its table).
- Local codes are translated with the Puskesmas's ConceptMaps (and its table's own additions);
  the standard coding comes first, the local one is kept. A local code without a translation
  rejects the message, so it waits in the inbox until the mapping is fixed.
- Re-sent visits do not duplicate: an Encounter's id is derived from its SATUSEHAT identifier
  (``sys-ids``), and its Conditions, Observations and Immunizations get ids derived from that
  identifier too; all are PUTs, so an identical resource makes no new version. (Ids, not
  conditional creates: a search per visit would cost more than the visit's storing.)

Identifiers, phones, kelurahan codes, ICD-10 and times are made canonical by the pipeline.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import orjson

from adapters.puskesmas.mapping import FacilityMapping, Mappings, load_mappings
from fhirhub.errors import FhirError, Issue
from fhirhub.ingest import Context, Mapped, Message
from fhirhub.ingest.visits import ENCOUNTER_SYSTEM, child_id, encounter_id

LOCAL_SYSTEMS = "https://fhirhub.baubaukota.go.id/CodeSystem/"
_CHILDREN = ("Condition", "Observation", "Immunization")
_CODED = {"Condition": "code", "Observation": "code", "Immunization": "vaccineCode"}


class PuskesmasAdapter:
    name = "puskesmas"

    def claims(self, bundle: dict[str, Any], context: Context) -> bool:
        """A transaction or batch whose Patients use a Puskesmas record-number system, or whose
        Encounters carry a Puskesmas's SATUSEHAT encounter identifier (a batch is then refused
        by ``map``, and kept: a Puskesmas sends transactions)."""
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") not in (
            "transaction",
            "batch",
        ):
            return False
        entries = bundle.get("entry")
        if not isinstance(entries, list):
            return False
        mappings = load_mappings(context.mappings_dir / "puskesmas")
        return bool(_facility_codes(entries, mappings))

    def map(self, message: Message, context: Context) -> Mapped:
        bundle = _parse(message.payload)
        mappings = load_mappings(context.mappings_dir / "puskesmas")
        entries = bundle["entry"]
        facility = _facility(entries, message.sender, mappings)
        issues: list[Issue] = []
        maps = context.concept_maps
        for i, entry in enumerate(entries):
            where = f"Bundle.entry[{i}].resource"
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue  # the transaction reports it
            rtype = resource.get("resourceType")
            if rtype == "Patient":
                issues.extend(_check_mrn(resource, facility, where))
            if rtype in _CODED:
                issues.extend(_translate(resource, _CODED[rtype], facility, maps, where))
            if rtype == "Observation":
                for k, component in enumerate(resource.get("component") or []):
                    if isinstance(component, dict):
                        issues.extend(
                            _translate(component, "code", facility, maps, f"{where}.component[{k}]")
                        )
        if issues:
            raise FhirError(422, issues)
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                _clock(entry["resource"], facility.clock)
        _idempotent_requests(entries)
        return Mapped(bundle=bundle, sender=facility.code, organization=facility.organization)


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        bundle = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise FhirError.single(400, "structure", "The payload is not JSON") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError.single(400, "structure", "A Puskesmas sends a Bundle", "Bundle")
    if bundle.get("type") != "transaction":
        raise FhirError.single(
            400, "invalid", "A Puskesmas Bundle must be a transaction", "Bundle.type"
        )
    if not isinstance(bundle.get("entry"), list) or not bundle["entry"]:
        raise FhirError.single(400, "required", "The Bundle has no entries", "Bundle.entry")
    return bundle


def _facility_codes(entries: list[Any], mappings: Mappings) -> set[str]:
    """The Puskesmas whose record-number systems (on Patients) or SATUSEHAT encounter
    identifier systems (on Encounters) the entries use."""
    found: set[str] = set()
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        rtype = resource.get("resourceType")
        if rtype not in ("Patient", "Encounter"):
            continue
        identifiers = resource.get("identifier")
        for ident in identifiers if isinstance(identifiers, list) else ():
            system = ident.get("system") if isinstance(ident, dict) else None
            if not isinstance(system, str):
                continue
            if rtype == "Patient" and system in mappings.by_mrn_system:
                found.add(mappings.by_mrn_system[system].code)
            elif rtype == "Encounter" and system.startswith(ENCOUNTER_SYSTEM):
                facility = mappings.by_satusehat_id.get(system[len(ENCOUNTER_SYSTEM) :])
                if facility is not None:
                    found.add(facility.code)
    return found


def _facility(entries: list[Any], sender: str | None, mappings: Mappings) -> FacilityMapping:
    found = _facility_codes(entries, mappings)
    if sender:
        # the sender's code, or the Organization of an authenticated facility client
        named = mappings.by_code.get(sender.upper()) or mappings.by_organization.get(sender)
        if named is None:
            raise FhirError.single(422, "not-found", f"No mapping table for Puskesmas '{sender}'")
        if found and found != {named.code}:
            raise FhirError.single(
                422,
                "business-rule",
                f"Records of another Puskesmas in a Bundle sent by {named.code}",
                "Bundle.entry.resource.identifier",
            )
        return named
    if len(found) != 1:
        what = "no" if not found else "more than one"
        raise FhirError.single(
            422,
            "business-rule",
            f"The Bundle's records use {what} known Puskesmas record-number or encounter "
            "identifier system",
            "Bundle.entry.resource.identifier",
        )
    return mappings.by_code[found.pop()]


def _check_mrn(patient: dict[str, Any], facility: FacilityMapping, where: str) -> list[Issue]:
    for k, ident in enumerate(patient.get("identifier") or []):
        if isinstance(ident, dict) and ident.get("system") == facility.mrn_system:
            value = ident.get("value")
            if facility.mrn_pattern and not (
                isinstance(value, str) and facility.mrn_pattern.match(value)
            ):
                return [
                    Issue(
                        "value",
                        f"{facility.code} record numbers look like {facility.mrn_pattern.pattern}",
                        (f"{where}.identifier[{k}].value",),
                    )
                ]
            return []
    return [
        Issue(
            "required",
            f"A Patient from {facility.code} carries its record number ({facility.mrn_system})",
            (f"{where}.identifier",),
        )
    ]


def _translate(
    element: dict[str, Any], key: str, facility: FacilityMapping, maps: Any, where: str
) -> list[Issue]:
    concept = element.get(key)
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return []
    out: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for k, coding in enumerate(concept["coding"]):
        system = coding.get("system") if isinstance(coding, dict) else None
        code = coding.get("code") if isinstance(coding, dict) else None
        if not (isinstance(system, str) and system.startswith(LOCAL_SYSTEMS)):
            out.append(coding)
            continue
        target = None
        extra = facility.local_codes.get((system, str(code)))
        if extra:
            target = (extra.target_system, extra.target_code, extra.target_display)
        else:
            target = maps.translate(list(facility.concept_maps), system, str(code))
        if target is None:
            issues.append(
                Issue(
                    "code-invalid",
                    f"Local code '{code}' of {system} has no translation in the mapping of "
                    f"{facility.code}",
                    (f"{where}.{key}.coding[{k}]",),
                )
            )
            continue
        standard: dict[str, Any] = {"system": target[0], "code": target[1]}
        if target[2]:
            standard["display"] = target[2]
        out.extend([standard, coding])
    if not issues:
        concept["coding"] = out
    return issues


_NAIVE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")


def _clock(node: Any, offset: str) -> None:
    """Times sent without an offset are the clinic's clock (``clock`` in its table)."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(value, str):
            if _NAIVE_TIME.match(value):
                node[key] = value + offset
        elif isinstance(value, dict | list):
            _clock(value, offset)


def _idempotent_requests(entries: list[dict[str, Any]]) -> None:
    """Encounters and their children by ids derived from the encounter's identifier."""
    encounter_keys: dict[str, tuple[str, str]] = {}  # fullUrl -> (system, value)
    for entry in entries:
        resource = entry.get("resource")
        request = entry.get("request")
        if not isinstance(resource, dict) or not isinstance(request, dict):
            continue
        if resource.get("resourceType") != "Encounter" or request.get("method") != "POST":
            continue
        for ident in resource.get("identifier") or []:
            system, value = ident.get("system"), ident.get("value")
            if isinstance(system, str) and system.startswith(ENCOUNTER_SYSTEM) and value:
                key = (system, value)
                res_id = encounter_id(system, value)
                resource["id"] = res_id
                entry["request"] = {"method": "PUT", "url": f"Encounter/{res_id}"}
                if isinstance(entry.get("fullUrl"), str):
                    encounter_keys[entry["fullUrl"]] = key
                break
    ordinal: dict[tuple[tuple[str, str], str], int] = defaultdict(int)
    for entry in entries:
        resource = entry.get("resource")
        request = entry.get("request")
        if not isinstance(resource, dict) or not isinstance(request, dict):
            continue
        rtype = resource.get("resourceType")
        if rtype not in _CHILDREN or request.get("method") != "POST":
            continue
        encounter = resource.get("encounter")
        ref = encounter.get("reference") if isinstance(encounter, dict) else None
        visit = encounter_keys.get(ref) if isinstance(ref, str) else None
        if visit is None:
            continue
        n = ordinal[(visit, rtype)]
        ordinal[(visit, rtype)] += 1
        res_id = child_id(*visit, rtype, n)
        resource["id"] = res_id
        entry["request"] = {"method": "PUT", "url": f"{rtype}/{res_id}"}
