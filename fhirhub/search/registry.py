"""The search parameters fhirhub knows, from its committed table.

The table ``data/search_parameters.json`` is built by ``scripts/build_search_params.py`` from the
official FHIR R4 (4.0.1) SearchParameter and StructureDefinition Bundles; it names its source.
Parameters defined on ``Resource`` (``_id``, ``_lastUpdated``, ``_tag``, ``_profile``,
``_security``, ``_source``...) apply to every resource type.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "search_parameters.json"
# fhirhub's own SearchParameters (content, not code): every *.json SearchParameter here is
# searchable, its expression evaluated with fhirpathpy. Reindex after adding one.
CUSTOM_DIR = Path(__file__).resolve().parents[2] / "conformance" / "search-parameters"

# Parameters answered from the ``resources`` table rather than from index rows.
COLUMN_PARAMS = {"_id": "token", "_lastUpdated": "date"}


@cache
def table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return data


def resource_types() -> list[str]:
    return list(table()["resourceTypes"])


def is_resource_type(name: str) -> bool:
    return name in _type_set()


@cache
def _type_set() -> frozenset[str]:
    return frozenset(table()["resourceTypes"])


@cache
def params_of(res_type: str) -> dict[str, dict[str, Any]]:
    """Every parameter of ``res_type`` (its own and the Resource-level ones), by code."""
    t = table()["params"]
    out = dict(t.get("Resource", {}))
    out.update(t.get(res_type, {}))
    out.update(custom_params().get(res_type, {}))
    return out


@cache
def custom_params() -> dict[str, dict[str, dict[str, Any]]]:
    """SearchParameters from ``CUSTOM_DIR``: per base type, code -> entry (like the table's)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if not CUSTOM_DIR.is_dir():
        return out
    for f in sorted(CUSTOM_DIR.glob("*.json")):
        sp = json.loads(f.read_text(encoding="utf-8"))
        if sp.get("resourceType") != "SearchParameter" or sp.get("status") == "retired":
            continue
        for base in sp.get("base", []):
            entry: dict[str, Any] = {
                "url": sp["url"],
                "type": sp["type"],
                "custom": True,
                "expression": sp.get("expression", ""),
            }
            if sp.get("target"):
                entry["target"] = sp["target"]
            if sp["type"] in ("composite", "special") or not sp.get("expression"):
                entry["unsupported"] = "custom composite/special parameters are not supported"
            else:
                entry["fhirpath"] = sp["expression"]
            out.setdefault(base, {})[sp["code"]] = entry
            table()["documentation"].setdefault(sp["url"], sp.get("description", ""))
    return out


def param(res_type: str, code: str) -> dict[str, Any] | None:
    return params_of(res_type).get(code)


def stored_as(res_type: str | None, code: str) -> tuple[tuple[str, ...], str | None]:
    """The ``param`` names whose index rows answer ``code``, and a target type they must have.

    Usually ``((code,), None)``; an alias (``Observation.patient`` is ``subject`` restricted to
    Patient targets, ``combo-code`` is ``code`` with ``component-code``) has no rows of its own.
    """
    p = param(res_type or "Resource", code)
    alias = p.get("alias") if p else None
    if alias:
        return tuple(alias["params"]), alias["target"]
    return (code,), None


def compartment(comp_type: str) -> dict[str, list[str]]:
    """For compartment ``comp_type`` (e.g. Patient): resource type -> parameters linking it."""
    return dict(table()["compartments"].get(comp_type, {}))


def summary_elements(res_type: str) -> list[str]:
    return list(table()["summary"].get(res_type, []))


def required_elements(res_type: str) -> list[str]:
    return list(table()["required"].get(res_type, []))


def supported_params(res_type: str) -> list[dict[str, Any]]:
    """CapabilityStatement ``rest.resource.searchParam`` entries for ``res_type``."""
    docs = table()["documentation"]
    out = []
    for code, p in sorted(params_of(res_type).items()):
        if "unsupported" in p:
            continue
        out.append(
            {
                "name": code,
                "definition": p["url"],
                "type": p["type"],
                "documentation": docs.get(p["url"], ""),
            }
        )
    return out


def unsupported_params(res_type: str) -> list[tuple[str, str]]:
    """(name, reason) of each parameter of ``res_type`` that fhirhub does not search."""
    return sorted(
        (code, p["unsupported"]) for code, p in params_of(res_type).items() if "unsupported" in p
    )
