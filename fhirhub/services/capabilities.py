"""The CapabilityStatement, generated from what this server implements.
http://hl7.org/fhir/R4/capabilitystatement.html
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhirhub import FHIR_VERSION, __version__
from fhirhub.model.resource_types import resource_types
from fhirhub.search import registry

# What fhirhub/services and fhirhub/api implement for every resource type.
TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
OPERATIONS = (
    ("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"),
    # not an R4 core operation: fhirhub's own, as HAPI FHIR has one
    ("reindex", "https://fhirhub.baubaukota.go.id/fhir/OperationDefinition/reindex"),
    ("evaluate-measure", "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"),
    ("data-requirements", "http://hl7.org/fhir/OperationDefinition/Measure-data-requirements"),
)


@cache
def _resources() -> list[dict[str, Any]]:
    out = []
    for res_type in sorted(resource_types()):
        if res_type in ("Parameters",):
            continue
        entry: dict[str, Any] = {
            "type": res_type,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{res_type}",
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "referencePolicy": ["literal", "local"],
            "searchParam": registry.supported_params(res_type),
        }
        unsupported = registry.unsupported_params(res_type)
        if unsupported:
            entry["extension"] = [
                {
                    "url": "https://fhirhub.baubaukota.go.id/fhir/StructureDefinition/unsupported-search-param",
                    "extension": [
                        {"url": "name", "valueString": name},
                        {"url": "reason", "valueString": reason},
                    ],
                }
                for name, reason in unsupported
            ]
        out.append(entry)
    return out


def capability_statement(base_url: str, published: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "publisher": "Dinas Kesehatan Kota Baubau",
        "kind": "instance",
        "software": {"name": "fhirhub", "version": __version__},
        "implementation": {
            "description": "fhirhub, the health information exchange of Kota Baubau",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "resource": _resources(),
                "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
                "operation": [
                    {
                        "name": name,
                        "definition": definition,
                    }
                    for name, definition in OPERATIONS
                ],
            }
        ],
    }
