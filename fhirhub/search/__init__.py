"""FHIR search: index rows on write, queries on read (https://hl7.org/fhir/R4/search.html)."""

from __future__ import annotations

from typing import Any


def find_matches(conn: Any, res_type: str, query: str) -> list[tuple[int, str]]:
    """(resources.pk, res_id) of the current resources of ``res_type`` matching ``query``."""
    from fhirhub.search.query import find_matches as _find

    return _find(conn, res_type, query)


__all__ = ["find_matches"]
