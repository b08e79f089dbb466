"""The tables search reads, described for query building only.

The tables themselves are declared (and migrated) by ``fhirhub.storage``; the search layer may not
import storage (see the import-linter layers in pyproject.toml), so it describes the columns it
reads here. ``tests/search/test_tables.py`` checks both descriptions agree.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, MetaData, String, Table, Text

_md = MetaData()


def _index(name: str, *cols: Column) -> Table:  # type: ignore[type-arg]
    return Table(
        name,
        _md,
        Column("row_pk", BigInteger, primary_key=True),
        Column("resource_pk", BigInteger),
        Column("res_type", String(64)),
        Column("param", String(100)),
        *cols,
    )


resources = Table(
    "resources",
    _md,
    Column("pk", BigInteger, primary_key=True),
    Column("res_type", String(64)),
    Column("res_id", String(64)),
    Column("version", Integer),
    Column("last_updated", BigInteger),
    Column("deleted", Boolean),
)
resource_versions = Table(
    "resource_versions",
    _md,
    Column("resource_pk", BigInteger, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("res_type", String(64)),
    Column("res_id", String(64)),
    Column("last_updated", BigInteger),
    Column("method", String(8)),
    Column("deleted", Boolean),
    Column("content", Text),
)
search_string = _index("search_string", Column("value", Text), Column("exact", Text))
search_token = _index(
    "search_token", Column("system", Text), Column("code", Text), Column("text", Text)
)
search_date = _index("search_date", Column("low", BigInteger), Column("high", BigInteger))
search_number = _index("search_number", Column("low", Float), Column("high", Float))
search_quantity = _index(
    "search_quantity",
    Column("low", Float),
    Column("high", Float),
    Column("system", Text),
    Column("code", Text),
    Column("unit", Text),
)
search_reference = _index(
    "search_reference",
    Column("target_type", String(64)),
    Column("target_id", String(64)),
    Column("url", Text),
)
search_uri = _index("search_uri", Column("value", Text))
search_composite = _index(
    "search_composite",
    Column("c1_system", Text),
    Column("c1_code", Text),
    Column("c2_system", Text),
    Column("c2_code", Text),
    Column("c2_low", Float),
    Column("c2_high", Float),
    Column("c2_dlow", BigInteger),
    Column("c2_dhigh", BigInteger),
)

INDEX_TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        search_string,
        search_token,
        search_date,
        search_number,
        search_quantity,
        search_reference,
        search_uri,
        search_composite,
    )
}

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
