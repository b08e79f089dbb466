"""Structure is checked against R4's definitions by the one walk (docs/adr/0008): unknown
elements, arrays, required elements, choices, contained resources, primitive formats (calendar
dates and 32-bit integers too), each refused with a 400 naming the element. fhir.resources' R4B
models are the oracle: whatever they refuse in a resource R4 and R4B define alike, the walk
refuses too."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest
from factories import patient
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fhirhub.model.validation import resource_issues
from fhirhub.synth import demo_bundles

H = {"content-type": "application/fhir+json"}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2025-03-01T08:00:00+08:00",
    "valueQuantity": {"value": 12.5, "unit": "kg"},
}

# (a resource's changes, the element named, the issue code)
BROKEN: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
    (patient(), {"birthDate": "2025-02-30"}, "Patient.birthDate", "value"),
    (patient(), {"birthDate": "2025-13"}, "Patient.birthDate", "value"),
    (
        OBSERVATION,
        {"effectiveDateTime": "2025-04-31T08:00:00+08:00"},
        "Observation.effective[x]",
        "",
    ),
    (OBSERVATION, {"issued": "2025-03-01T08:00:00"}, "Observation.issued", "value"),
    (patient(), {"multipleBirthInteger": 2**31}, "Patient.multipleBirthInteger", "value"),
    (patient(), {"multipleBirthInteger": 1.5}, "Patient.multipleBirthInteger", "value"),
    (patient(), {"gender": ["female"]}, "Patient.gender", "structure"),
    (patient(), {"name": {"text": "Wa Ode Siti"}}, "Patient.name", "structure"),
    (
        patient(),
        {"name": [{"text": "Wa Ode Siti", "nickname": "Siti"}]},
        "Patient.name[0].nickname",
        "structure",
    ),
    (
        patient(),
        {"deceasedBoolean": False, "deceasedDateTime": "2025-01-01"},
        "Patient.deceased[x]",
        "structure",
    ),
    (patient(), {"contained": [{"id": "o1"}]}, "Patient.contained[0].resourceType", "required"),
    (
        patient(),
        {"contained": [{"resourceType": "Pasien", "id": "o1"}]},
        "Patient.contained[0].resourceType",
        "not-supported",
    ),
    (
        patient(),
        {"contained": [{"resourceType": "Organization", "id": "o1", "nama": "x"}]},
        "Patient.contained[0].nama",
        "structure",
    ),
    (
        patient(),
        {"contained": [{"resourceType": "Observation", "id": "o1", "status": "final"}]},
        "Patient.contained[0].code",
        "required",
    ),
    (patient(), {"link": [{"type": "seealso"}]}, "Patient.link[0].other", "required"),
    (OBSERVATION, {"valueString": "12"}, "Observation.value[x]", "structure"),
    (OBSERVATION, {"status": None}, "Observation.status", "structure"),
]


def _changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


@pytest.mark.parametrize(("base", "changes", "where", "code"), BROKEN, ids=lambda v: str(v)[:60])
def test_refused_naming_the_element(
    client: TestClient, base: dict[str, Any], changes: dict[str, Any], where: str, code: str
) -> None:
    body = _changed(base, changes)
    r = client.post(f"/fhir/{body['resourceType']}", json=body, headers=H)
    assert r.status_code == 400, r.text
    issues = r.json()["issue"]
    named = [i for i in issues if i["expression"][0].startswith(where.removesuffix("[x]"))]
    assert named, issues
    if code:
        assert any(i["code"] == code for i in named), issues


@pytest.mark.parametrize(
    "changes",
    [
        {"birthDate": "2024-02-29"},  # a leap day
        {"birthDate": "1959"},  # a year alone
        {"multipleBirthInteger": -(2**31)},
        {"contained": [{"resourceType": "Organization", "id": "o1", "name": "Puskesmas Wajo"}]},
    ],
)
def test_valid_r4_is_stored(client: TestClient, changes: dict[str, Any]) -> None:
    r = client.post("/fhir/Patient", json=_changed(patient(), changes), headers=H)
    assert r.status_code == 201, r.text


# --- fhir.resources as the oracle ------------------------------------------------------------


@cache
def _seeds() -> tuple[dict[str, Any], ...]:
    """Valid resources of many kinds: the demo city's (reference data and visits)."""
    out: dict[str, dict[str, Any]] = {}
    for bundle in demo_bundles(40, 2):
        for entry in bundle["entry"]:
            resource = entry["resource"]
            out.setdefault(resource["resourceType"], resource)
    return tuple(out.values())


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "resourceType":
                out += _paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*at, i))
    return out


_REPLACEMENTS = st.sampled_from(
    [None, "", "  ", "x", 0, -1, 2**31, 1.5, True, "true", [], {}, ["x"], {"zz": 1}, "2025-02-30"]
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    resource = copy.deepcopy(draw(st.sampled_from(_seeds())))
    paths = [p for p in _paths(resource) if p]
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(paths))
        parent: Any = resource
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        kind = draw(st.sampled_from(["replace", "drop", "wrap", "unknown"]))
        if kind == "drop" and isinstance(parent, dict):
            parent.pop(last, None)
        elif kind == "wrap":
            parent[last] = [parent[last]]
        elif kind == "unknown" and isinstance(parent[last], dict):
            parent[last]["zz"] = "x"
        else:
            parent[last] = copy.deepcopy(draw(_REPLACEMENTS))
        paths = [p for p in _paths(resource) if p]
        if not paths:
            break
    return resource


def _model_refuses(resource: dict[str, Any]) -> bool:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except (ValidationError, ValueError, TypeError):
        return True
    return False


def test_the_seeds_are_valid() -> None:
    assert len(_seeds()) >= 8
    for resource in _seeds():
        assert resource_issues(resource) == [], resource["resourceType"]
        assert not _model_refuses(resource)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_what_the_r4b_model_refuses_the_walk_refuses(resource: dict[str, Any]) -> None:
    if _model_refuses(resource):
        assert resource_issues(resource), resource
