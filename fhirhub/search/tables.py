"""The tables search reads: the storage layer's, under the names the query code uses, and the
index rows of one search parameter in them."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, Table

from fhirhub.search import registry
from fhirhub.storage.index_models import INDEX_TABLES as _INDEX_TABLES
from fhirhub.storage.models import resource_versions, resources

INDEX_TABLES: dict[str, Table] = {name: cast(Table, t) for name, t in _INDEX_TABLES.items()}
search_string = INDEX_TABLES["search_string"]
search_token = INDEX_TABLES["search_token"]
search_date = INDEX_TABLES["search_date"]
search_number = INDEX_TABLES["search_number"]
search_quantity = INDEX_TABLES["search_quantity"]
search_reference = INDEX_TABLES["search_reference"]
search_uri = INDEX_TABLES["search_uri"]
search_composite = INDEX_TABLES["search_composite"]

TABLE_OF_TYPE = {
    "string": search_string,
    "token": search_token,
    "date": search_date,
    "number": search_number,
    "quantity": search_quantity,
    "reference": search_reference,
    "uri": search_uri,
    "composite": search_composite,
}


def param_scope(
    t: Any, res_type: str | None, code: str, suffix: str = ""
) -> list[ColumnElement[bool]]:
    """Index rows of parameter ``code`` of ``res_type`` (through its alias, if it is one)."""
    names, target = registry.stored_as(res_type, code)
    out: list[ColumnElement[bool]] = []
    if res_type:
        out.append(t.c.res_type == res_type)
    if len(names) == 1:
        out.append(t.c.param == names[0] + suffix)
    else:
        out.append(t.c.param.in_([n + suffix for n in names]))
    if target and "target_type" in t.c:
        out.append(t.c.target_type == target)
    return out


__all__ = ["INDEX_TABLES", "TABLE_OF_TYPE", "param_scope", "resource_versions", "resources"]
