"""Date prefixes at their edges, one microsecond apart (https://hl7.org/fhir/R4/search.html#prefix).

A value stored with six fractional digits covers exactly one microsecond; a search value to the
second covers [s.000000, s.999999]. ``eb`` matches a value whose range ends *before* the search
range starts, ``sa`` one whose range starts *after* it ends: touching is not enough.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from search_helpers import store
from sqlalchemy import Engine

from fhirhub.errors import FhirError
from fhirhub.search import find_matches

# Each Observation happens at one microsecond around 10:00:00 WITA on 2013-01-14.
MOMENTS = {
    "before": "2013-01-14T09:59:59.999999+08:00",  # the last µs before 10:00:00
    "start": "2013-01-14T10:00:00.000000+08:00",  # the first µs of 10:00:00
    "end": "2013-01-14T10:00:00.999999+08:00",  # the last µs of 10:00:00
    "after": "2013-01-14T10:00:01.000000+08:00",  # the first µs after it
}


@pytest.fixture
def q(engine: Engine) -> Callable[[str], list[str]]:
    with engine.begin() as conn:
        for oid, moment in MOMENTS.items():
            store(
                conn,
                {
                    "resourceType": "Observation",
                    "id": oid,
                    "status": "final",
                    "effectiveDateTime": moment,
                },
            )

    def query(value: str) -> list[str]:
        with engine.connect() as conn:
            found = find_matches(conn, "Observation", f"date={value}")
            return sorted(rid for _, rid in found)

    return query


@pytest.mark.parametrize(
    "value,expected",
    [
        # the search range is [10:00:00.000000, 10:00:00.999999]
        ("eb2013-01-14T10:00:00%2B08:00", ["before"]),  # "start" touches it: not before
        ("sa2013-01-14T10:00:00%2B08:00", ["after"]),  # "end" touches it: not after
        ("eq2013-01-14T10:00:00%2B08:00", ["end", "start"]),
        ("lt2013-01-14T10:00:00%2B08:00", ["before"]),
        ("gt2013-01-14T10:00:00%2B08:00", ["after"]),
        ("le2013-01-14T10:00:00%2B08:00", ["before", "end", "start"]),
        ("ge2013-01-14T10:00:00%2B08:00", ["after", "end", "start"]),
        # a search value with microseconds covers one microsecond
        ("eb2013-01-14T10:00:00.000000%2B08:00", ["before"]),
        ("eb2013-01-14T10:00:00.000001%2B08:00", ["before", "start"]),
        ("sa2013-01-14T10:00:00.999999%2B08:00", ["after"]),
        ("sa2013-01-14T10:00:00.999998%2B08:00", ["after", "end"]),
    ],
)
def test_date_prefix_edges_are_one_microsecond(
    q: Callable[[str], list[str]], value: str, expected: list[str]
) -> None:
    assert q(value) == expected


def test_ap_is_within_a_tenth_of_the_distance_to_now(engine: Engine) -> None:
    """ap: "approximately the same", fhirhub's choice following the specification's
    suggestion: within 10% of the distance between the value and now (at least a day).
    A value 1,000 days ago is matched by a resource 60 days from it, not 150 days."""
    today = datetime.now(UTC).date()
    asked = today - timedelta(days=1000)
    with engine.begin() as conn:
        for oid, days in (("near", 60), ("far", 150)):
            when = (asked - timedelta(days=days)).isoformat()
            store(conn, {"resourceType": "Observation", "id": oid, "status": "final",
                         "effectiveDateTime": when})  # fmt: skip
    with engine.connect() as conn:
        found = find_matches(conn, "Observation", f"date=ap{asked.isoformat()}")
    assert sorted(rid for _, rid in found) == ["near"]


def test_dates_before_1970_with_range_prefixes(engine: Engine) -> None:
    """gt, ge and ap also bound the range scan by the parameter's largest span; a birth date
    before the epoch (negative microseconds) is still found."""
    with engine.begin() as conn:
        for pid, born in (("old", "1950-06-01"), ("young", "1990-06-01")):
            store(conn, {"resourceType": "Patient", "id": pid, "birthDate": born})
    with engine.connect() as conn:

        def ids(query: str) -> list[str]:
            return sorted(rid for _, rid in find_matches(conn, "Patient", query))

        assert ids("birthdate=gt1940-01-01") == ["old", "young"]
        assert ids("birthdate=ge1950-06-01") == ["old", "young"]
        assert ids("birthdate=gt1960") == ["young"]
        assert ids("birthdate=ap1950-06-01") == ["old"]


def test_an_unknown_prefix_is_named_in_the_error(engine: Engine) -> None:
    with engine.connect() as conn:
        for value in ("zz2020", "xxA2020", "geX"):
            with pytest.raises(FhirError) as err:
                find_matches(conn, "Observation", f"date={value}")
            assert err.value.status == 400
        with pytest.raises(FhirError) as err:
            find_matches(conn, "Observation", "date=xx2020")
        assert "unknown prefix 'xx'" in err.value.issues[0].diagnostics
        with pytest.raises(FhirError) as err:
            find_matches(conn, "Observation", "date=notadate")
        assert "'notadate' is not a date" in err.value.issues[0].diagnostics
