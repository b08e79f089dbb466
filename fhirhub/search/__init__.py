"""FHIR search: index rows on write, queries on read (https://hl7.org/fhir/R4/search.html)."""

from __future__ import annotations

from typing import Any


def find_matches(conn: Any, res_type: str, query: str, access: Any = None) -> list[tuple[int, str]]:
    """(resources.pk, res_id) of the current resources of ``res_type`` matching ``query``
    (of those ``access``, a :class:`fhirhub.search.access.Access`, reaches)."""
    from fhirhub.search.query import find_matches as _find

    return _find(conn, res_type, query, access)


def find_matches_many(conn: Any, conditions: Any, access: Any = None) -> list[Any]:
    """:func:`find_matches` of each (type, query) of ``conditions`` in one statement: each a
    list of matches, or the FhirError saying why it cannot be searched."""
    from fhirhub.search.query import find_matches_many as _find_many

    return _find_many(conn, conditions, access)


__all__ = ["find_matches", "find_matches_many"]
