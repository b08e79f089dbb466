"""Every official search parameter either indexes or is declared unsupported with a reason.

For each parameter of each resource type, a resource is generated with a value at every path
the parameter's expression reaches; ``index_rows`` must produce rows for it, and the values the
compiled paths reach must be exactly those fhirpathpy finds with the official expression.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import fhirpathpy
import orjson
import pytest
from fhirpathpy.models import models

from fhirhub.search import registry
from fhirhub.search.indexing import index_rows

R4 = models["r4"]
TABLE = {
    "string": "search_string",
    "token": "search_token",
    "date": "search_date",
    "number": "search_number",
    "quantity": "search_quantity",
    "reference": "search_reference",
    "uri": "search_uri",
    "composite": "search_composite",
}
QTY = {"value": 5.5, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
SAMPLES: dict[str, Any] = {
    "CodeableConcept": {
        "coding": [{"system": "http://s", "code": "c1", "display": "D"}],
        "text": "T",
    },
    "Coding": {"system": "http://s", "code": "c1", "display": "D"},
    "Identifier": {"system": "http://id", "value": "v1"},
    "ContactPoint": {"system": "phone", "value": "0812"},
    "HumanName": {"family": "Family", "given": ["Given"]},
    "Address": {"line": ["Jl. Satu"], "city": "Baubau"},
    "Period": {"start": "2024-01-01", "end": "2024-02-01"},
    "Timing": {"event": ["2024-01-01T10:00:00+08:00"]},
    "Quantity": QTY,
    "Age": {**QTY, "unit": "a", "code": "a"},
    "Duration": {**QTY, "unit": "min", "code": "min"},
    "Count": {"value": 3},
    "Distance": QTY,
    "Money": {"value": 1000, "currency": "IDR"},
    "Range": {"low": QTY, "high": {**QTY, "value": 7.5}},
    "date": "2024-01-01",
    "dateTime": "2024-01-01T10:00:00+08:00",
    "instant": "2024-01-01T10:00:00.123+08:00",
    "boolean": True,
    "integer": 5,
    "positiveInt": 5,
    "unsignedInt": 5,
    "decimal": 5.5,
    "uri": "http://example.org/a",
    "url": "http://example.org/a",
    "canonical": "http://example.org/fhir/StructureDefinition/a",
    "Resource": {"resourceType": "Composition", "id": "c1"},
}


def _sample(vtype: str, ptype: str, target: str | None) -> Any:
    if vtype == "Reference":
        return {"reference": f"{target or 'Patient'}/r1"}
    if vtype in SAMPLES:
        return SAMPLES[vtype]
    if ptype == "date":
        return "2024-01-01"
    return "abc"


def _place(node: dict[str, Any], steps: list[list[Any]], value: Any) -> None:
    for i, (key, flt) in enumerate(steps):
        last = i == len(steps) - 1
        if last:
            if flt and flt[0] == "eq":
                value = {**value, flt[1]: flt[2]}
            node.setdefault(key, [])
            if not isinstance(node[key], list):
                node[key] = [node[key]]
            node[key].append(value)
            return
        existing = node.get(key)
        if isinstance(existing, list) and existing:
            node = existing[0]
            continue
        if isinstance(existing, dict):
            node = existing
            continue
        child: dict[str, Any] = {}
        if flt and flt[0] == "eq":
            child[flt[1]] = flt[2]
        node[key] = [child]
        node = child


def _target(steps: list[list[Any]], p: dict[str, Any]) -> str | None:
    for _, flt in steps:
        if flt and flt[0] == "reftype":
            return str(flt[1])
    return (p.get("target") or [None])[0]


def _cases() -> list[tuple[str, str]]:
    out = []
    for t in registry.resource_types():
        for code, p in registry.params_of(t).items():
            # custom parameters (conformance/) are evaluated by fhirpathpy itself
            if code in registry.COLUMN_PARAMS or "unsupported" in p or p.get("custom"):
                continue
            out.append((t, code))
    return out


def _generate(res_type: str, p: dict[str, Any], path: dict[str, Any]) -> dict[str, Any]:
    """A resource with a value at one compiled path of ``p`` (one choice type at a time)."""
    resource: dict[str, Any] = {"resourceType": res_type, "id": "x1"}
    if path["type"] == "deceased":
        resource["deceasedBoolean"] = True
    elif p["type"] == "composite":
        root: dict[str, Any] = {}
        for comp in p["components"]:
            cpath = comp["paths"][0]
            _place(root, cpath["steps"], _sample(cpath["type"], comp["type"], None))
        if path["steps"]:
            _place(resource, path["steps"], root)
        else:
            resource.update(root)
    else:
        value = _sample(path["type"], p["type"], _target(path["steps"], p))
        _place(resource, path["steps"], value)
    return resource


def _plain(values: list[Any]) -> list[str]:
    """Values as sorted, distinct JSON (a FHIRPath union drops duplicates)."""
    out = set()
    for v in values:
        if isinstance(v, Decimal):
            v = float(v)
        elif hasattr(v, "isoformat") or type(v).__name__.startswith("FP_"):
            v = str(v)
        out.add(orjson.dumps(v, option=orjson.OPT_SORT_KEYS, default=float).decode())
    return sorted(out)


CASES = _cases()


def test_every_official_parameter_is_covered() -> None:
    """Each parameter of each type is searchable or listed unsupported with a reason."""
    for t in registry.resource_types():
        supported = {sp["name"] for sp in registry.supported_params(t)}
        unsupported = dict(registry.unsupported_params(t))
        assert supported.isdisjoint(unsupported)
        assert all(reason for reason in unsupported.values())
        assert set(registry.params_of(t)) == supported | set(unsupported)
    assert len(CASES) > 1500


@pytest.mark.parametrize("res_type,code", CASES)
def test_parameter_indexes_like_fhirpath(res_type: str, code: str) -> None:
    from fhirhub.search.indexing import _composite_extractor, _make_walker, _path_extractor

    p = registry.param(res_type, code)
    assert p is not None and p.get("paths")
    expression = p.get("expression") or ""
    if expression.startswith("Resource."):
        expression = res_type + expression[len("Resource") :]
    for path in p["paths"]:
        resource = _generate(res_type, p, path)
        rows = index_rows(copy.deepcopy(resource)).get(TABLE[p["type"]], [])
        names, target = registry.stored_as(res_type, code)
        mine = [
            {k: v for k, v in r.items() if k != "param"}
            for r in rows
            if r["param"] in names and (target is None or r.get("target_type") == target)
        ]
        assert mine, (res_type, code, resource)
        if "alias" in p:  # an alias's rows are exactly those it would have had itself
            own: dict[str, list[dict[str, Any]]] = {}
            extract = (
                _composite_extractor(code, p)
                if p["type"] == "composite"
                else _path_extractor(code, p["type"], p["paths"])
            )
            extract(copy.deepcopy(resource), own)
            expected = [{k: v for k, v in r.items() if k != "param"} for r in own[TABLE[p["type"]]]]
            assert _plain(mine) == _plain(expected), (res_type, code)
        if p["type"] == "composite" or "resolve()" in expression or path["type"] == "deceased":
            continue  # fhirpathpy has no resolve(); composites are checked via their parts
        ours = _make_walker(path["steps"])(resource)
        theirs = fhirpathpy.evaluate(copy.deepcopy(resource), expression, {}, R4)
        assert _plain(ours) == _plain(theirs), (res_type, code, expression, resource)


def test_aliases_share_rows() -> None:
    assert registry.stored_as("Observation", "patient") == (("subject",), "Patient")
    assert registry.stored_as("Observation", "combo-code") == (("code", "component-code"), None)
    assert registry.stored_as("Patient", "phonetic") == (("name",), None)
    assert registry.stored_as("Patient", "name") == (("name",), None)
