"""Structural validation of a resource with fhir.resources (R4B models; see docs/adr/0002),
and of its primitives' JSON kinds against the R4 definitions (``primitives``).

Every problem is reported, each with the FHIRPath of the offending element.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhirhub.errors import FhirError, Issue
from fhirhub.model.primitives import primitive_issues
from fhirhub.model.resource_types import is_resource_type, is_valid_id

# R4 resource types that fhir.resources' R4B models no longer have. They are accepted with the
# structural checks below only; their R4 StructureDefinitions are the authority.
R4_ONLY_TYPES = frozenset(
    {
        "EffectEvidenceSynthesis",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "RiskEvidenceSynthesis",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
    }
)

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
    if rtype not in R4_ONLY_TYPES:
        try:
            _model(rtype).model_validate(resource)
        except ValidationError as exc:
            issues.extend(_issue_of(err, where or rtype) for err in exc.errors())
        except (ValueError, TypeError) as exc:  # raised by some model validators directly
            issues.append(Issue("structure", str(exc), (where or rtype,)))
    reported = {e for issue in issues for e in issue.expression}
    issues.extend(
        issue
        for issue in primitive_issues(resource, where or rtype)
        if issue.expression[0] not in reported
    )
    return issues


def validate_resource(resource: Any, path: str = "") -> None:
    issues = resource_issues(resource, path)
    if issues:
        raise FhirError(400, issues)


def _issue_of(err: Any, root: str) -> Issue:
    loc = [part for part in err["loc"] if part != "__root__"]
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


def _fhir_name(field: str) -> str:
    # fhir.resources renames Python keywords, e.g. class -> class_fhir
    return field.removesuffix("__ext").removesuffix("_fhir")


def _join(path: str, element: str) -> str:
    return f"{path}.{element}" if path else element
