"""The roles a client is bound to, and the most each may be granted (issue 13).

The table is data, kept here rather than in a content folder because it is policy the code and
the tests rely on, and a change to it is a security decision reviewed like code. Scopes only say
which resource types and interactions a role may use; the rest of a role's bounds is enforced
elsewhere: a ``facility`` only as its own Organization, an ``analyst`` never seeing a direct
identifier (indicators, views and de-identified exports through operations, not ``Patient``).

``AuditEvent`` is written by the server alone (no role may create, change or delete one) and
read only by ``admin``: ``*`` scopes never reach it (:data:`fhirhub.auth.scopes.WILDCARD_EXCLUDED`).
"""

from __future__ import annotations

from enum import StrEnum

from fhirhub.auth.scopes import Scope, format_scopes, merge, narrow, parse_scopes


class Role(StrEnum):
    facility = "facility"  # a Puskesmas or the RSUD, bound to its Organization and adapter
    analyst = "analyst"  # indicators, views, de-identified exports
    steward = "steward"  # patient-index review
    sync = "sync"  # national jobs (SATUSEHAT, BPJS), bulk export
    admin = "admin"


# The clinical record a facility writes as itself and reads back.
_CLINICAL = [
    "Patient",
    "Encounter",
    "EpisodeOfCare",
    "Observation",
    "Condition",
    "Procedure",
    "Immunization",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationStatement",
    "AllergyIntolerance",
    "DiagnosticReport",
    "ServiceRequest",
    "CarePlan",
    "Composition",
    "DocumentReference",
    "Coverage",
    "Claim",
    "QuestionnaireResponse",
    "Specimen",
]
# Directory resources: read by everyone who works with the record.
_DIRECTORY = ["Organization", "Location", "Practitioner", "PractitionerRole", "Medication"]
# The analyst's rows: clinical facts without the Patient resource that names the person.
_ANALYST_READS = [t for t in _CLINICAL if t not in {"Patient", "Coverage", "Claim"}]
_INDICATORS = ["Measure", "MeasureReport", "Library", "ValueSet", "CodeSystem", "ConceptMap"]


def _scopes(*groups: tuple[list[str], str]) -> str:
    return " ".join(f"system/{t}.{perms}" for types, perms in groups for t in types)


#: The most each role may be granted, as SMART v2 scope strings.
ROLE_SCOPES: dict[Role, str] = {
    Role.facility: _scopes(
        (_CLINICAL, "cruds"),
        (["Provenance"], "crs"),
        (_DIRECTORY, "rs"),
        (["Practitioner", "PractitionerRole", "Location"], "cu"),
    ),
    Role.analyst: _scopes((_ANALYST_READS, "rs"), (_DIRECTORY, "rs"), (_INDICATORS, "rs")),
    Role.steward: _scopes(
        (["Patient", "Person"], "rus"),
        (["Provenance"], "crs"),
        (["Encounter", "Coverage"], "rs"),
        (["Organization", "Location"], "rs"),
    ),
    Role.sync: "system/*.cruds",
    Role.admin: "system/*.cruds system/AuditEvent.rs",
}


def role_scopes(role: Role) -> tuple[Scope, ...]:
    """The scopes ``role`` may be granted at most."""
    return merge(parse_scopes(ROLE_SCOPES[role]))


def grant(role: Role, requested: str) -> str:
    """The scope string to grant a client of ``role`` that asked for ``requested``: the part
    of the request the role allows (everything it allows when nothing was asked). Raises
    :class:`fhirhub.auth.scopes.ScopeError` for a malformed request; an empty result means
    nothing requested is allowed (OAuth ``invalid_scope`` at the token endpoint)."""
    return format_scopes(narrow(parse_scopes(requested), role_scopes(role)))
