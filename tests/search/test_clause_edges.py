"""Reference type modifiers and :of-type at their edges
(https://hl7.org/fhir/R4/search.html#reference, #token)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from search_helpers import store
from sqlalchemy import Engine

from fhirhub.errors import FhirError
from fhirhub.search import find_matches
from fhirhub.services.search import search

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@pytest.fixture
def q(engine: Engine) -> Callable[[str, str], list[str]]:
    with engine.begin() as conn:
        store(
            conn,
            {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [
                    {
                        "type": {"coding": [{"system": V2, "code": "MR"}]},
                        "system": "https://rs.example/mrn",
                        "value": "12345",
                    }
                ],
            },
        )
        store(conn, {"resourceType": "Group", "id": "g1", "type": "person", "actual": True})
        store(
            conn,
            {"resourceType": "Observation", "id": "o1", "status": "final",
             "subject": {"reference": "Patient/p1"}},
        )  # fmt: skip
        store(
            conn,
            {"resourceType": "Observation", "id": "o2", "status": "final",
             "subject": {"reference": "Group/g1"}},
        )  # fmt: skip
        for vid, url in (
            ("v1", "http://acme.org/fhir/"),
            ("v2", "http://acme.org/fhir"),
            ("v3", "http://acme.org/fhir/ValueSet/123"),
            ("v4", "http://acme.org/f"),
        ):
            store(conn, {"resourceType": "ValueSet", "id": vid, "status": "active", "url": url})

    def query(res_type: str, query: str) -> list[str]:
        with engine.connect() as conn:
            return sorted(rid for _, rid in find_matches(conn, res_type, query))

    return query


@pytest.mark.parametrize(
    "query,expected",
    [
        ("subject:Patient=Patient/p1", ["o1"]),  # the modifier agrees with the reference
        ("subject:Patient=p1", ["o1"]),  # the modifier gives the type of a bare id
        ("subject:Group=Patient/p1", []),  # disagrees: nothing, not an error
        ("subject:Group=g1", ["o2"]),
        ("subject=Group/g1", ["o2"]),
    ],
)
def test_a_type_modifier_on_a_reference(
    q: Callable[[str, str], list[str]], query: str, expected: list[str]
) -> None:
    assert q("Observation", query) == expected


def test_of_type_needs_system_code_and_value(q: Callable[[str, str], list[str]]) -> None:
    assert q("Patient", f"identifier:of-type={V2}|MR|12345") == ["p1"]
    assert q("Patient", f"identifier:of-type={V2}|MR|99999") == []
    for bad in (f"{V2}|MR|", f"{V2}||12345", f"{V2}|MR", "12345"):
        with pytest.raises(FhirError) as err:
            q("Patient", f"identifier:of-type={bad}")
        assert err.value.status == 400, bad


def test_uri_above_matches_every_ancestor_with_or_without_its_slash(
    q: Callable[[str, str], list[str]],
) -> None:
    """:above: the URL and each of its parents, written with or without a trailing slash;
    a string prefix that is not a path segment ("http://acme.org/f") is not a parent."""
    assert q("ValueSet", "url:above=http://acme.org/fhir/ValueSet/123") == ["v1", "v2", "v3"]


def test_an_absolute_reference_to_this_server_is_a_local_one(engine: Engine, q) -> None:  # type: ignore[no-untyped-def]
    base = "http://fhir.test/fhir"
    with engine.connect() as conn:
        found = search(
            conn,
            res_type="Observation",
            params=[("subject", f"{base}/Patient/p1")],
            base_url=base,
        )
    assert [e["resource"]["id"] for e in found["entry"]] == ["o1"]
