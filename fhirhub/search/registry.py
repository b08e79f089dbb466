"""The search parameters fhirhub knows, from its committed table.

The table ``data/search_parameters.json`` is built by ``scripts/build_search_params.py`` from the
official FHIR R4 (4.0.1) SearchParameter and StructureDefinition Bundles; it names its source.
Parameters defined on ``Resource`` (``_id``, ``_lastUpdated``, ``_tag``, ``_profile``,
``_security``, ``_source``...) apply to every resource type.
"""

from __future__ import annotations

import json
import re
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
                paths = simple_paths(sp["expression"], base, sp["type"])
                if paths:  # walked like the official parameters' compiled paths
                    entry["paths"] = paths
                else:  # evaluated with fhirpathpy
                    entry["fhirpath"] = sp["expression"]
            out.setdefault(base, {})[sp["code"]] = entry
            table()["documentation"].setdefault(sp["url"], sp.get("description", ""))
    return out


# The FHIR types a choice element (``value[x]``) is read as, per search parameter type.
_CHOICE_TYPES = {
    "token": ("code", "Coding", "CodeableConcept", "Identifier", "string", "boolean", "uri"),
    "string": ("string", "markdown"),
    "date": ("date", "dateTime", "instant", "Period"),
    "reference": ("Reference", "canonical", "uri"),
    "uri": ("uri", "url", "canonical"),
    "number": ("integer", "decimal", "positiveInt", "unsignedInt"),
    "quantity": ("Quantity",),
}
_SEGMENT = re.compile(r"extension\('([^'\\]+)'\)|([A-Za-z]\w*)")


def simple_paths(expression: str, base: str, ptype: str) -> list[dict[str, Any]] | None:
    """Compiled paths of a custom parameter's expression when it is a plain path of elements
    and ``extension('url')`` filters ending in an extension's ``value`` (e.g. the kelurahan code
    ``Patient.address.extension('…administrativeCode').extension('village').value``); None for
    anything else (fhirpathpy evaluates those)."""
    parts = expression.split(".")
    if len(parts) < 3 or parts[0] != base or parts[-1] != "value" or ptype not in _CHOICE_TYPES:
        return None
    steps: list[list[Any]] = []
    rest = ".".join(parts[1:-1])
    pos = 0
    for m in _SEGMENT.finditer(rest):
        if m.start() != pos:
            return None
        url, name = m.groups()
        steps.append(["extension", ["eq", "url", url]] if url else [name, None])
        pos = m.end() + 1  # the dot after it
    if pos != len(rest) + 1 or not steps or steps[-1][0] != "extension":
        return None
    return [
        {"single": False, "steps": [*steps, ["value" + t[0].upper() + t[1:], None]], "type": t}
        for t in _CHOICE_TYPES[ptype]
    ]


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


def compartment_rows(comp_type: str, res_type: str) -> list[str]:
    """The ``param`` names of the index rows that put a ``res_type`` in a ``comp_type``
    compartment (its linking parameters, an alias read as the parameters it names; the rows'
    target type is ``comp_type``); empty when no ``res_type`` can be in one."""
    links = compartment(comp_type).get(res_type, [])
    return sorted({n for link in links for n in stored_as(res_type, link)[0]})


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
