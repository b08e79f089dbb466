"""The tables search reads: the storage layer's, under the names the query code uses."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

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

__all__ = ["INDEX_TABLES", "TABLE_OF_TYPE", "resource_versions", "resources"]
