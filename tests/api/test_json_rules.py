"""FHIR's JSON rules (http://hl7.org/fhir/R4/json.html) and ext-1 are the store's: no null, no
empty array, no empty object, no empty string, and an extension has a value or extensions (one,
not both). Each break is refused with a 400 naming the element, by POST, PUT, PATCH and inside a
transaction, every issue reported at once."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from factories import patient
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirhub.model.validation import resource_issues

H = {"content-type": "application/fhir+json"}
PATCH = {"content-type": "application/json-patch+json"}

# (what the client adds to a valid Patient, the element each issue names)
BROKEN: list[tuple[dict[str, Any], set[str]]] = [
    ({"active": None}, {"Patient.active"}),
    ({"name": []}, {"Patient.name"}),
    ({"name": [{}]}, {"Patient.name[0]"}),
    ({"contact": [{}]}, {"Patient.contact[0]"}),
    ({"name": [{"family": ""}]}, {"Patient.name[0].family"}),
    ({"name": [{"given": ["a", None]}]}, {"Patient.name[0].given[1]"}),
    ({"name": [None]}, {"Patient.name[0]"}),
    ({"maritalStatus": {"coding": [{"code": None}]}}, {"Patient.maritalStatus.coding[0].code"}),
    ({"_birthDate": {}}, {"Patient._birthDate"}),
    ({"extension": [{"url": "http://x"}]}, {"Patient.extension[0]"}),
    (
        {"extension": [{"url": "http://x", "valueString": "a", "extension": [{}]}]},
        {"Patient.extension[0]", "Patient.extension[0].extension[0]"},
    ),
    (
        {"extension": [{"url": "http://x", "extension": [{"url": "y"}]}]},
        {"Patient.extension[0].extension[0]"},
    ),
    (
        {"active": None, "name": [], "contact": [{}], "telecom": [{"value": None}]},
        {"Patient.active", "Patient.name", "Patient.contact[0]", "Patient.telecom[0].value"},
    ),
]
IDS = [json.dumps(extra) for extra, _ in BROKEN]


def _refused(r: Any, paths: set[str], prefix: str = "Patient") -> None:
    assert r.status_code == 400, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    found = {e for issue in outcome["issue"] for e in issue.get("expression", [])}
    assert found == {prefix + p.removeprefix("Patient") for p in paths}, outcome


@pytest.mark.parametrize(("extra", "paths"), BROKEN, ids=IDS)
def test_post_refuses(client: TestClient, extra: dict, paths: set[str]) -> None:
    _refused(client.post("/fhir/Patient", json={**patient(), **extra}, headers=H), paths)


@pytest.mark.parametrize(("extra", "paths"), BROKEN, ids=IDS)
def test_put_refuses(client: TestClient, extra: dict, paths: set[str]) -> None:
    body = {**patient(), "id": "p1", **extra}
    _refused(client.put("/fhir/Patient/p1", json=body, headers=H), paths)
    assert client.get("/fhir/Patient/p1").status_code == 404


@pytest.mark.parametrize(("extra", "paths"), BROKEN, ids=IDS)
def test_patch_refuses(client: TestClient, extra: dict, paths: set[str]) -> None:
    created = client.post("/fhir/Patient", json=patient(), headers=H).json()
    ops = [{"op": "add", "path": f"/{key}", "value": value} for key, value in extra.items()]
    r = client.patch(f"/fhir/Patient/{created['id']}", content=json.dumps(ops), headers=PATCH)
    _refused(r, paths)
    assert client.get(f"/fhir/Patient/{created['id']}").json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize(("extra", "paths"), BROKEN, ids=IDS)
def test_transaction_refuses(client: TestClient, extra: dict, paths: set[str]) -> None:
    good = {"resource": patient(), "request": {"method": "POST", "url": "Patient"}}
    bad = {"resource": {**patient(), **extra}, "request": {"method": "POST", "url": "Patient"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [good, bad]}
    _refused(client.post("/fhir", json=bundle, headers=H), paths, "Bundle.entry[1].resource")
    assert client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"] == 0


def test_patch_inside_a_transaction_refuses(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient(), headers=H).json()
    ops = json.dumps([{"op": "add", "path": "/name", "value": []}]).encode()
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(ops).decode(),
    }
    entry = {"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{created['id']}"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    _refused(
        client.post("/fhir", json=bundle, headers=H), {"Patient.name"}, "Bundle.entry[0].resource"
    )


@pytest.mark.parametrize(
    "extra",
    [
        # null pads a primitive array beside its _given array, and the reverse
        {"name": [{"given": ["a", None], "_given": [None, {"id": "x"}]}]},
        {
            "name": [
                {
                    "given": ["a", None],
                    "_given": [None, {"extension": [{"url": "u", "valueCode": "c"}]}],
                }
            ]
        },
        {"_birthDate": {"extension": [{"url": "http://x", "valueString": "a"}]}},
        # a primitive's extension on an extension's value (CodeSystem/v2-0335 has them)
        {
            "extension": [
                {
                    "url": "http://x",
                    "valueString": "a",
                    "_valueString": {"extension": [{"url": "lang", "valueCode": "nl"}]},
                }
            ]
        },
        {"extension": [{"url": "http://x", "extension": [{"url": "y", "valueCode": "b"}]}]},
        # R4's Extension.value[x] has Meta (R4B's has not)
        {"extension": [{"url": "http://x", "valueMeta": {"versionId": "1"}}]},
    ],
    ids=lambda extra: json.dumps(extra)[:60],
)
def test_what_the_rules_allow_is_stored(client: TestClient, extra: dict) -> None:
    r = client.post("/fhir/Patient", json={**patient(), **extra}, headers=H)
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in extra} == extra


def test_extension_checks_are_r4s(client: TestClient) -> None:
    """Extension.value[x] is checked against R4: R4B's CodeableReference is unknown there, and
    one value[x] at most."""
    bad = {
        "extension": [
            {"url": "http://x", "valueCodeableReference": {"concept": {"text": "a"}}},
            {"url": "http://x", "valueString": "a", "valueCode": "b"},
            {"url": "http://x", "valueString": "a", "_valueString": {"url": "nope"}},
        ]
    }
    _refused(
        client.post("/fhir/Patient", json={**patient(), **bad}, headers=H),
        {
            "Patient.extension[0].valueCodeableReference",
            "Patient.extension[1].value[x]",
            "Patient.extension[2]._valueString.url",
        },
    )


def test_ext_1_message(client: TestClient) -> None:
    body = {**patient(), "extension": [{"url": "http://x"}]}
    issue = client.post("/fhir/Patient", json=body, headers=H).json()["issue"][0]
    assert issue["code"] == "invariant"
    assert issue["diagnostics"].startswith("ext-1")


def test_the_official_v2_0335_code_system_is_stored(client: TestClient) -> None:
    """From the spec's v2-tables.json.gz (CC0): its concepts' comments carry translations as
    extensions of ``_valueString`` inside an extension."""
    example = json.loads((Path(__file__).parent / "data" / "CodeSystem-v2-0335.json").read_text())
    assert '"_valueString"' in json.dumps(example)
    r = client.put("/fhir/CodeSystem/v2-0335", json=example, headers=H)
    assert r.status_code == 201, r.text
    assert client.get("/fhir/CodeSystem/v2-0335").json()["concept"] == example["concept"]


# --- property: whichever element is emptied, the issue names it ---------------------------

RICH = {
    **patient(),
    "extension": [
        {
            "url": "https://fhir.kemkes.go.id/r4/StructureDefinition/AdministrativeCode",
            "extension": [{"url": "village", "valueCode": "7472011001"}],
        }
    ],
    "telecom": [{"system": "phone", "value": "0812", "use": "mobile"}],
    "address": [{"line": ["Jl. Betoambari"], "city": "Baubau", "postalCode": "93721"}],
    "contact": [{"name": {"text": "La Ode Ali"}, "telecom": [{"system": "phone", "value": "1"}]}],
    "maritalStatus": {"coding": [{"system": "http://x", "code": "M"}], "text": "Kawin"},
}


def _paths(node: Any, path: str) -> list[tuple[list[str | int], str]]:
    """(JSON location, FHIRPath) of every element below ``node``."""
    out: list[tuple[list[str | int], str]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
        if key == "resourceType":
            continue
        out.append(([key], where))
        if isinstance(value, dict | list):
            out.extend(([key, *loc], p) for loc, p in _paths(value, where))
    return out


PATHS = _paths(RICH, "Patient")


@given(st.sampled_from(PATHS), st.sampled_from([None, [], {}, ""]))
@settings(max_examples=200, deadline=None)
def test_an_emptied_element_is_named(target: tuple[list[str | int], str], empty: Any) -> None:
    loc, path = target
    body = copy.deepcopy(RICH)
    node: Any = body
    for key in loc[:-1]:
        node = node[key]
    node[loc[-1]] = empty
    issues = resource_issues(body)
    assert issues, (path, empty)
    assert path in {e for issue in issues for e in issue.expression}, (path, empty, issues)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    ),
    st.sampled_from(["name", "extension", "contact", "_birthDate", "meta", "contained", "x"]),
)
@settings(max_examples=200, deadline=None)
def test_any_json_is_judged_without_crashing(value: Any, key: str) -> None:
    issues = resource_issues({**RICH, key: value})
    assert all(issue.expression and issue.diagnostics for issue in issues)
