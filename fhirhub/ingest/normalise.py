"""The canonical pass every message's Bundle goes through, whatever its source.

Identifiers (NIK, BPJS card, IHS number), gender (``L``/``P``), phones (E.164), the address's
kelurahan code, ICD-10 codes and times (+08:00). Source-specific work — local codes, record
numbers, request shapes — is the adapter's. Values that cannot be made canonical are kept as sent.
"""

from __future__ import annotations

from typing import Any

from fhirhub.errors import Issue
from fhirhub.ingest import canonical as c
from fhirhub.ingest.regions import Regions, administrative_code
from fhirhub.ingest.terminology import ConceptMaps

_IDENTIFIER_RULES = {
    c.NIK: c.nik,
    c.NIK_IBU: c.nik,
    c.BPJS_CARD: c.bpjs_card,
    c.IHS_NUMBER: c.ihs_number,
}
_PEOPLE = {"Patient", "Practitioner", "RelatedPerson", "Person"}
_ADDRESSED = _PEOPLE | {"Organization", "Location"}


def canonicalise_bundle(bundle: dict[str, Any], regions: Regions, maps: ConceptMaps) -> None:
    """Rewrite every entry's resource in canonical form (in place)."""
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            canonicalise_resource(resource, regions, maps)


def canonicalise_resource(resource: dict[str, Any], regions: Regions, maps: ConceptMaps) -> None:
    rtype = resource.get("resourceType")
    if rtype in _PEOPLE:
        _identifiers(resource)
        _telecom(resource)
        _gender(resource)
        for contact in resource.get("contact") or [] if rtype == "Patient" else []:
            if isinstance(contact, dict):
                _gender(contact)
    if rtype in _ADDRESSED:
        addresses = resource.get("address")
        for address in addresses if isinstance(addresses, list) else [addresses]:
            if isinstance(address, dict):
                _kelurahan(address, regions)
    _icd10(resource, maps.icd10_terminal)
    c.times_to_wita(resource)


def _identifiers(resource: dict[str, Any]) -> None:
    for ident in resource.get("identifier") or []:
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        rule = _IDENTIFIER_RULES.get(ident.get("system", ""))
        fixed = rule(ident["value"]) if rule else None
        if fixed:
            ident["value"] = fixed


def _gender(element: dict[str, Any]) -> None:
    value = element.get("gender")
    fixed = c.gender(value) if isinstance(value, str) else None
    if fixed:
        element["gender"] = fixed


def _telecom(resource: dict[str, Any]) -> None:
    for point in resource.get("telecom") or []:
        if isinstance(point, dict) and point.get("system") in ("phone", "sms"):
            value = point.get("value")
            fixed = c.phone_e164(value) if isinstance(value, str) else None
            if fixed:
                point["value"] = fixed


def _kelurahan(address: dict[str, Any], regions: Regions) -> None:
    """Add the administrativeCode extension when the address names its kelurahan only in text."""
    extensions = address.get("extension") or []
    if any(isinstance(e, dict) and e.get("url") == c.ADMINISTRATIVE_CODE for e in extensions):
        return
    texts = [address.get("text"), *(address.get("line") or [])]
    for text in texts:
        village = regions.from_text(text) if isinstance(text, str) else None
        if village:
            address["extension"] = [*extensions, administrative_code(village)]
            return


def _icd10(node: Any, terminal: frozenset[str]) -> None:
    if isinstance(node, dict):
        if node.get("system") == c.ICD10 and isinstance(node.get("code"), str):
            fixed = c.icd10(node["code"], terminal)
            if fixed:
                node["code"] = fixed
            return
        for value in node.values():
            if isinstance(value, dict | list):
                _icd10(value, terminal)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, dict | list):
                _icd10(value, terminal)


def unresolved_references(bundle: dict[str, Any]) -> list[Issue]:
    """``urn:uuid:`` references that name no entry of the Bundle (they would dangle)."""
    entries = bundle.get("entry", []) or []
    full_urls = {e.get("fullUrl") for e in entries if isinstance(e, dict)}
    issues: list[Issue] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith("urn:") and ref not in full_urls:
                issues.append(
                    Issue("not-found", "The reference names no entry of the Bundle", (path,))
                )
            for key, value in node.items():
                if isinstance(value, dict | list):
                    walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            walk(entry["resource"], f"Bundle.entry[{i}].resource")
    return issues
