"""Custom SearchParameters from conformance/search-parameters/: indexed, searched, reindexed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from search_helpers import store
from sqlalchemy import Engine

from fhirhub.search import find_matches, indexing, registry
from fhirhub.search.indexing import index_rows
from fhirhub.services.search import reindex

ADMIN = "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode"


@pytest.fixture
def village_param(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    shutil.copy(Path(__file__).parent / "data" / "Patient-address-village.json", tmp_path)
    monkeypatch.setattr(registry, "CUSTOM_DIR", tmp_path)
    _clear()
    yield
    monkeypatch.undo()
    _clear()


def _clear() -> None:
    registry.custom_params.cache_clear()
    registry.params_of.cache_clear()
    indexing.extractors.cache_clear()


def _patient(pid: str, village: str) -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "address": [
            {
                "city": "Kota Baubau",
                "extension": [
                    {
                        "url": ADMIN,
                        "extension": [
                            {"url": "city", "valueCode": "7472"},
                            {"url": "village", "valueCode": village},
                        ],
                    }
                ],
            }
        ],
    }


def test_index_rows_of_custom_parameter(village_param: None) -> None:
    rows = index_rows(_patient("p1", "7472011001"))["search_token"]
    assert {"param": "address-village", "system": None, "code": "7472011001", "text": None} in rows
    assert "address-village" in {p["name"] for p in registry.supported_params("Patient")}


def test_search_and_reindex(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(registry, "CUSTOM_DIR", tmp_path / "none-yet")
    _clear()
    with engine.begin() as conn:  # stored before the parameter exists
        store(conn, _patient("p1", "7472011001"))
        store(conn, _patient("p2", "7472021003"))
    shutil.copy(Path(__file__).parent / "data" / "Patient-address-village.json", tmp_path)
    monkeypatch.setattr(registry, "CUSTOM_DIR", tmp_path)
    _clear()
    try:
        with engine.begin() as conn:
            assert find_matches(conn, "Patient", "address-village=7472011001") == []
            assert reindex(conn, res_type="Patient") == 2
            assert [m[1] for m in find_matches(conn, "Patient", "address-village=7472011001")] == [
                "p1"
            ]
    finally:
        monkeypatch.undo()
        _clear()


def _village_rows(resource: dict) -> list[tuple]:
    return sorted(
        (r["system"] or "", r["code"] or "")
        for r in index_rows(resource).get("search_token", [])
        if r["param"] == "address-village"
    )


@pytest.mark.parametrize(
    "addresses",
    [
        [],
        [{"city": "Kota Baubau"}],
        [{"extension": [{"url": ADMIN, "extension": [{"url": "village", "valueCode": "A"}]}]}],
        [  # two addresses, one with a Coding, one with a string; other extensions around
            {
                "extension": [
                    {"url": "https://example.org/other", "valueString": "x"},
                    {
                        "url": ADMIN,
                        "extension": [
                            {"url": "city", "valueCode": "7472"},
                            {"url": "village", "valueCoding": {"system": "s", "code": "B"}},
                        ],
                    },
                ]
            },
            {"extension": [{"url": ADMIN, "extension": [{"url": "village", "valueString": "C"}]}]},
        ],
        [
            {
                "extension": [
                    {
                        "url": "https://example.org/other",
                        "extension": [{"url": "village", "valueCode": "not ours"}],
                    }
                ]
            }
        ],
    ],
)
def test_a_plain_custom_path_is_walked_as_fhirpathpy_evaluates_it(
    village_param: None, addresses: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Custom expressions that are plain paths with extension('url') filters are compiled
    (``registry.simple_paths``); their rows are exactly those of fhirpathpy's evaluation."""
    p = registry.params_of("Patient")["address-village"]
    assert "paths" in p and "fhirpath" not in p
    resource = {"resourceType": "Patient", "id": "p1", "address": addresses}
    walked = _village_rows(resource)
    # the same parameter evaluated by fhirpathpy
    monkeypatch.setattr(registry, "simple_paths", lambda *a: None)
    _clear()
    assert "fhirpath" in registry.params_of("Patient")["address-village"]
    assert _village_rows(resource) == walked


@pytest.mark.parametrize(
    "expression",
    [
        "Patient.address.city",  # not an extension's value: its type is not known here
        "Patient.extension('x').value.as(Coding)",
        "Patient.address.where(use='home').extension('x').value",
        "Observation.extension('x').value",  # another base
    ],
)
def test_other_expressions_stay_with_fhirpathpy(expression: str) -> None:
    assert registry.simple_paths(expression, "Patient", "token") is None
