"""Structural validation of a resource against its R4 definition (``rules.Walk``, from tables
built from the official R4 definitions; docs/adr/0008).

Every problem is reported, each with the FHIRPath of the offending element.
"""

from __future__ import annotations

from typing import Any

from fhirhub.errors import FhirError, Issue
from fhirhub.model.resource_types import is_resource_type, is_valid_id
from fhirhub.model.rules import Walk


def resource_issues(resource: Any, path: str = "") -> list[Issue]:
    """All structural problems of ``resource``; ``path`` prefixes each expression
    (e.g. ``Bundle.entry[3].resource``)."""
    if not isinstance(resource, dict):
        return [Issue("structure", "A resource must be a JSON object", (path or "$",))]
    rtype = resource.get("resourceType")
    where = path or (rtype if isinstance(rtype, str) else "")
    if not isinstance(rtype, str) or not rtype:
        return [Issue("required", "resourceType is missing", (_join(where, "resourceType"),))]
    if not is_resource_type(rtype):
        return [
            Issue(
                "not-supported",
                f"Unknown resource type '{rtype}' (not a FHIR R4 resource)",
                (_join(where, "resourceType"),),
            )
        ]
    issues: list[Issue] = []
    rid = resource.get("id")
    if rid is not None and not (isinstance(rid, str) and is_valid_id(rid)):
        issues.append(Issue("value", "id must be 1-64 of A-Z a-z 0-9 - .", (_join(where, "id"),)))
    reported = {e for issue in issues for e in issue.expression}
    issues.extend(i for i in Walk(resource, where).issues if i.expression[0] not in reported)
    return issues


def validate_resource(resource: Any, path: str = "") -> None:
    issues = resource_issues(resource, path)
    if issues:
        raise FhirError(400, issues)


def _join(path: str, element: str) -> str:
    return f"{path}.{element}" if path else element
