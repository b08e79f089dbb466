"""find_matches: the conditional-interaction lookup, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from search_helpers import remove, store
from sqlalchemy import Engine

from fhirhub.errors import FhirError
from fhirhub.search import find_matches

NIK = "https://fhir.kemkes.go.id/id/nik"


def _patient(pid: str, nik: str, family: str, birth: str, **extra: object) -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NIK, "value": nik}],
        "name": [{"family": family, "given": ["Wa Ode"]}],
        "birthDate": birth,
        "active": True,
        **extra,
    }


def test_identifier_and_active(engine: Engine) -> None:
    with engine.begin() as conn:
        a = store(conn, _patient("a", "7472010101010001", "Sitti", "1990-03-04"))
        store(conn, _patient("b", "7472010101010002", "Hasanah", "1985-01-01", active=False))
        store(conn, _patient("c", "7472010101010003", "Muñoz", "1985-01-01"))
        remove(conn, "Patient", "c")
    with engine.connect() as conn:
        assert find_matches(conn, "Patient", f"identifier={NIK}|7472010101010001") == [(a, "a")]
        assert find_matches(conn, "Patient", "identifier=7472010101010001") == [(a, "a")]
        assert find_matches(conn, "Patient", "identifier=other|7472010101010001") == []
        assert [m[1] for m in find_matches(conn, "Patient", "active=true")] == ["a"]
        assert [m[1] for m in find_matches(conn, "Patient", "_id=a,b")] == ["a", "b"]
        # deleted resources never match
        assert find_matches(conn, "Patient", "identifier=7472010101010003") == []


def test_string_date_reference(engine: Engine) -> None:
    with engine.begin() as conn:
        store(conn, _patient("a", "1", "Muñoz", "1990-03-04"))
        store(conn, _patient("b", "2", "Munro", "1990-03"))
        store(
            conn,
            {
                "resourceType": "Observation",
                "id": "o1",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
                "subject": {"reference": "Patient/a"},
            },
        )
    with engine.connect() as conn:
        ids = lambda q: [m[1] for m in find_matches(conn, "Patient", q)]  # noqa: E731
        assert ids("family=munoz") == ["a"]  # accents and case ignored
        assert ids("family=MUN") == ["a", "b"]  # starts-with
        assert ids("family:exact=Muñoz") == ["a"]
        assert ids("family:exact=munoz") == []
        assert ids("birthdate=1990-03-04") == ["a"]
        assert ids("birthdate=1990-03") == ["a", "b"]  # both lie within March 1990
        obs = [m[1] for m in find_matches(conn, "Observation", "subject=Patient/a")]
        assert obs == ["o1"]
        assert [m[1] for m in find_matches(conn, "Observation", "patient=a")] == ["o1"]
        assert [m[1] for m in find_matches(conn, "Observation", "subject:Patient=a")] == ["o1"]


@pytest.mark.parametrize(
    "query,param",
    [
        ("birthdate=xx1990", "birthdate"),
        ("birthdate=1990-13-01", "birthdate"),
        ("nonsense=1", "nonsense"),
        ("gender.name=x", "gender.name"),
        ("family:fuzzy=x", "family:fuzzy"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(engine: Engine, query: str, param: str) -> None:
    with engine.connect() as conn, pytest.raises(FhirError) as err:
        find_matches(conn, "Patient", query)
    assert err.value.status == 400
    assert err.value.issues[0].expression == (param,)
