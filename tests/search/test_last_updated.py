"""_lastUpdated is exact at second and millisecond boundaries (sync jobs page by it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from search_helpers import store
from sqlalchemy import Engine

from fhirhub.search import find_matches
from fhirhub.services.search import search

T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)  # 2024-01-01T00:00:00Z


@pytest.fixture
def ids(engine: Engine):  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        store(
            conn,
            {"resourceType": "Basic", "id": "before", "code": {"text": "x"}},
            last_updated=T0 - 1,
        )
        store(conn, {"resourceType": "Basic", "id": "at", "code": {"text": "x"}}, last_updated=T0)
        store(
            conn,
            {"resourceType": "Basic", "id": "half", "code": {"text": "x"}},
            last_updated=T0 + 500_000,
        )
        store(
            conn,
            {"resourceType": "Basic", "id": "next", "code": {"text": "x"}},
            last_updated=T0 + 1_000_000,
        )

    def query(q: str) -> list[str]:
        with engine.connect() as conn:
            return sorted(m[1] for m in find_matches(conn, "Basic", q))

    return query


@pytest.mark.parametrize(
    "query,expected",
    [
        ("_lastUpdated=2024-01-01T00:00:00Z", ["at", "half"]),  # the whole second
        ("_lastUpdated=gt2024-01-01T00:00:00Z", ["next"]),
        ("_lastUpdated=ge2024-01-01T00:00:00Z", ["at", "half", "next"]),
        ("_lastUpdated=lt2024-01-01T00:00:00Z", ["before"]),
        ("_lastUpdated=gt2024-01-01T00:00:00.000Z", ["half", "next"]),  # millisecond precision
        ("_lastUpdated=ge2024-01-01T00:00:00.500Z", ["half", "next"]),
        ("_lastUpdated=lt2024-01-01T00:00:00.500Z", ["at", "before"]),
        ("_lastUpdated=eq2024-01-01T00:00:00.500Z", ["half"]),
        ("_lastUpdated=gt2024-01-01T08:00:00%2B08:00", ["next"]),  # the same second in WITA
        ("_lastUpdated=gt2024-01-01T07:59:59%2B08:00", ["at", "half", "next"]),
        ("_lastUpdated=2024-01-01T08:00:00.5%2B08:00", ["half"]),  # [.5, .6) s
        ("_lastUpdated=sa2023-12-31T23:59:59.999999Z", ["at", "half", "next"]),
    ],
)
def test_last_updated_boundaries(ids, query: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert ids(query) == expected


def test_sort_by_last_updated(engine: Engine, ids) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        b = search(conn, res_type="Basic", params=[("_sort", "-_lastUpdated")], base_url="http://x")
    assert [e["resource"]["id"] for e in b["entry"]] == ["next", "half", "at", "before"]
