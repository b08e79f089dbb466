"""Reference type modifiers and :of-type at their edges
(https://hl7.org/fhir/R4/search.html#reference, #token)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from search_helpers import store
from sqlalchemy import Engine

from fhirhub.errors import FhirError
from fhirhub.search import find_matches

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
