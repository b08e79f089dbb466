"""A facility writes only as itself: the Organization references of what it sends.

A ``facility`` client is bound to one Organization (the token's ``organization`` claim). Data it
writes that names another Organization as the one responsible for it (``serviceProvider``,
``managingOrganization``, ``performer``, ``organization``, ``custodian``, a Provenance's
``agent.who`` / ``agent.onBehalfOf``) claims to come from another facility and is refused.
References by identifier or to other resource types are not judged here.

What it writes is stamped as its own (:func:`stamp`): ``meta.source`` is its source URI and the
type's natural slot (``Encounter.serviceProvider``, ``Patient.managingOrganization``, an
Observation's or Immunization's ``performer``, ...) names its Organization when empty. What it
reads is :func:`reads_of` (the rule is in :mod:`fhirhub.search.access`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from fhirhub.search.access import Access

#: Elements that say which organisation is responsible for a resource or acted in it.
CLAIMING_ELEMENTS = (
    "serviceProvider",
    "managingOrganization",
    "performer",
    "organization",
    "custodian",
    "provider",
)
_ORG_REFERENCE = re.compile(r"(?:^|/)Organization/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def _references(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every ``reference`` string under ``value``, with its FHIRPath-like location."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            yield path, ref
        for key, item in value.items():
            if key not in ("reference", "contained", "extension", "modifierExtension"):
                yield from _references(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _references(item, f"{path}[{i}]")


def claimed_organizations(resource: Any, where: str | None = None) -> Iterator[tuple[str, str]]:
    """``(expression, "Organization/<id>")`` for each Organization ``resource`` claims."""
    if not isinstance(resource, dict):
        return
    rt = resource.get("resourceType")
    where = where or (rt if isinstance(rt, str) else "Resource")
    subtrees: list[tuple[str, Any]] = [
        (f"{where}.{k}", resource[k]) for k in CLAIMING_ELEMENTS if k in resource
    ]
    if rt == "Provenance" and isinstance(resource.get("agent"), list):
        for i, agent in enumerate(resource["agent"]):
            if isinstance(agent, dict):
                for k in ("who", "onBehalfOf"):
                    if k in agent:
                        subtrees.append((f"{where}.agent[{i}].{k}", agent[k]))
    for path, value in subtrees:
        for expression, ref in _references(value, path):
            m = _ORG_REFERENCE.search(ref)
            if m is not None:
                yield expression, f"Organization/{m.group(1)}"


def foreign_claim(resource: Any, own: str, where: str | None = None) -> tuple[str, str] | None:
    """The first place where ``resource`` names an Organization other than ``own``."""
    for expression, org in claimed_organizations(resource, where):
        if org != own:
            return expression, org
    return None


def foreign_claim_in_patch(operations: Any, own: str, res_type: str) -> tuple[str, str] | None:
    """The same for the values of a JSON Patch that sets claiming elements."""
    if not isinstance(operations, list):
        return None
    for i, op in enumerate(operations):
        if not isinstance(op, dict) or "value" not in op:
            continue
        path = str(op.get("path", ""))
        first = path.strip("/").split("/", 1)[0]
        if first in CLAIMING_ELEMENTS or first == "agent":
            value = op["value"]
            if first == "agent":
                agents = value if isinstance(value, list) else [value]
                probe: dict[str, Any] = {"resourceType": "Provenance", "agent": agents}
            else:
                probe = {"resourceType": res_type, first: value}
            found = foreign_claim(probe, own, f"patch[{i}]")
            if found is not None:
                return found
            # a value set below the element (/performer/0/actor): judge the value itself
            if isinstance(op["value"], dict):
                ref = op["value"].get("reference")
                m = _ORG_REFERENCE.search(ref) if isinstance(ref, str) else None
                if m is not None and f"Organization/{m.group(1)}" != own:
                    return f"patch[{i}].value", f"Organization/{m.group(1)}"
    return None


# --- what a facility reads, and the stamp on what it writes ----------------------------------

#: The base of every ``meta.source`` fhirhub writes (``fhirhub.ingest.provenance.SOURCE_BASE``).
SOURCE_BASE = "https://fhirhub.baubaukota.go.id/source/"
#: The directory: records every facility reads (the types of :data:`fhirhub.auth.roles` it
#: may read that describe places, organisations, people who work there and products).
DIRECTORY = frozenset(
    {"Organization", "Location", "Practitioner", "PractitionerRole", "Medication"}
)
#: Where a resource type names the organisation responsible for it: (element, how), ``ref``
#: a Reference, ``refs`` a list of References, ``actors`` a list of ``{actor: Reference}``.
NATURAL_SLOTS: dict[str, tuple[str, str]] = {
    "Patient": ("managingOrganization", "ref"),
    "Encounter": ("serviceProvider", "ref"),
    "EpisodeOfCare": ("managingOrganization", "ref"),
    "Observation": ("performer", "refs"),
    "DiagnosticReport": ("performer", "refs"),
    "Immunization": ("performer", "actors"),
    "Procedure": ("performer", "actors"),
}


def is_organization(reference: str | None) -> bool:
    return bool(reference) and _ORG_REFERENCE.fullmatch(str(reference)) is not None


def facility_source(adapter: str | None, organization: str) -> str:
    """The ``meta.source`` of what a facility writes: its source adapter and Organization
    (``…/source/puskesmas/Organization/org-pkm01``; ``facility`` for a client without one)."""
    return f"{SOURCE_BASE}{adapter or 'facility'}/{organization}"


def reads_of(organization: str | None, adapter: str | None, *legacy: str) -> Access:
    """What a facility client bound to ``organization`` reads (:mod:`fhirhub.search.access`);
    ``legacy``: more ``meta.source`` URIs that are its own (a Puskesmas code's, from before it
    had a client)."""
    if not is_organization(organization):
        return Access(None, (), DIRECTORY)
    assert organization is not None
    sources = (facility_source(adapter, organization), *legacy)
    return Access(organization, tuple(dict.fromkeys(sources)), DIRECTORY)


def stamp(resource: dict[str, Any], organization: str, source: str) -> dict[str, Any]:
    """``resource`` as a facility writes it: ``meta.source`` its own, and its Organization in
    the type's natural slot when that is empty (a new structure; ``resource`` is kept)."""
    out = dict(resource)
    meta = out.get("meta")
    out["meta"] = {**(meta if isinstance(meta, dict) else {}), "source": source}
    slot = NATURAL_SLOTS.get(str(out.get("resourceType")))
    if slot is not None:
        element, how = slot
        if not out.get(element):
            ref = {"reference": organization}
            out[element] = ref if how == "ref" else [ref] if how == "refs" else [{"actor": ref}]
    return out


def stamper(organization: str, source: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return partial(stamp, organization=organization, source=source)
