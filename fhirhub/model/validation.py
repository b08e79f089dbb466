"""Structural validation of a resource with fhir.resources (R4B models; see docs/adr/0002),
and of what they do not check against the R4 definitions (``rules``): FHIR's JSON rules,
primitives' JSON kinds, required codes, ext-1, and the R4 shape of the types R4B changed.

Every problem is reported, each with the FHIRPath of the offending element.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhirhub.errors import FhirError, Issue
from fhirhub.model.resource_types import is_resource_type, is_valid_id
from fhirhub.model.rules import Walk, checked_against_r4

_CHOICE_MSG = re.compile(r"\['(\w+?)[A-Z]")


@cache
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


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
    walk = Walk(resource, where)
    if not checked_against_r4(rtype):
        try:
            _model(rtype).model_validate(resource)
        except ValidationError as exc:
            issues.extend(_issue_of(err, where) for err in exc.errors())
        except (ValueError, TypeError) as exc:  # raised by some model validators directly
            issues.append(Issue("structure", str(exc), (where,)))
        if walk.r4_roots and issues:  # below these the R4 walk judges, not the R4B model
            issues = [i for i in issues if not _below(i.expression[0], walk.r4_roots)]
    reported = {e for issue in issues for e in issue.expression}
    issues.extend(issue for issue in walk.issues if issue.expression[0] not in reported)
    return issues


def validate_resource(resource: Any, path: str = "") -> None:
    issues = resource_issues(resource, path)
    if issues:
        raise FhirError(400, issues)


def _issue_of(err: Any, root: str) -> Issue:
    # "root" is pydantic's, for a model that wraps one value; no FHIR element has that name
    loc = [part for part in err["loc"] if part not in ("__root__", "root")]
    expr = root
    for part in loc:
        expr += f"[{part}]" if isinstance(part, int) else f".{_fhir_name(str(part))}"
    kind = err.get("type", "")
    message = str(err.get("msg", "invalid"))
    if kind == "missing":
        code = "required"
    elif kind == "extra_forbidden":
        code, message = "structure", "Unknown element"
    elif not loc and "Any of one field" in message:
        code = "structure"
        choice = _CHOICE_MSG.search(message)
        if choice:
            expr = f"{root}.{choice.group(1)}[x]"
    else:
        code = "value"
    return Issue(code, message.removeprefix("Value error, "), (expr,))


def _below(expression: str, roots: list[str]) -> bool:
    return any(
        expression == root or expression.startswith((root + ".", root + "[")) for root in roots
    )


def _fhir_name(field: str) -> str:
    # fhir.resources renames Python keywords, e.g. class -> class_fhir
    return field.removesuffix("__ext").removesuffix("_fhir")


def _join(path: str, element: str) -> str:
    return f"{path}.{element}" if path else element
