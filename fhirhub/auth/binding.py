"""A facility writes only as itself: the Organization references of what it sends.

A ``facility`` client is bound to one Organization (the token's ``organization`` claim). Data it
writes that names another Organization as the one responsible for it (``serviceProvider``,
``managingOrganization``, ``performer``, ``organization``, ``custodian``, a Provenance's
``agent.who`` / ``agent.onBehalfOf``) claims to come from another facility and is refused.
References by identifier or to other resource types are not judged here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

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
