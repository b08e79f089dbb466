"""Search-index tables, filled on every write from the resource's search parameters.

One table per search-parameter type. Each row belongs to the *current* version of a resource
(``resource_pk``); rows are replaced whenever the resource is. The rows themselves come from
``fhirhub.search.indexing.index_rows``; this module only says how they are stored.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fhirhub.storage.models import Base
from fhirhub.storage.types import BigIntPk


class _IndexRow:
    """Columns every index row has."""

    row_pk: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    # resources.pk, without a foreign key: only the write path writes these rows, with their
    # resource, and resources are never removed; checking it cost a lookup and a row lock per
    # index row (migration 0006).
    resource_pk: Mapped[int] = mapped_column(BigInteger)
    res_type: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(100))


class SearchString(_IndexRow, Base):
    __tablename__ = "search_string"
    __table_args__ = (
        # text_pattern_ops: PostgreSQL uses the index for the default starts-with (LIKE 'x%')
        # whatever the database collation.
        Index(
            "ix_search_string_lookup",
            "res_type",
            "param",
            "value",
            "resource_pk",
            postgresql_ops={"value": "text_pattern_ops"},
        ),
        Index("ix_search_string_resource", "resource_pk"),
    )
    value: Mapped[str] = mapped_column(Text)  # lower case, accents removed
    exact: Mapped[str] = mapped_column(Text)  # as written


class SearchToken(_IndexRow, Base):
    __tablename__ = "search_token"
    __table_args__ = (
        Index("ix_search_token_lookup", "res_type", "param", "code", "system", "resource_pk"),
        Index("ix_search_token_resource", "resource_pk"),
    )
    system: Mapped[str | None] = mapped_column(Text, nullable=True)
    code: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)  # normalised display/text


class SearchDate(_IndexRow, Base):
    __tablename__ = "search_date"
    __table_args__ = (
        Index("ix_search_date_lookup", "res_type", "param", "low", "high", "resource_pk"),
        Index("ix_search_date_span", "res_type", "param", "span"),
        Index("ix_search_date_resource", "resource_pk"),
    )
    low: Mapped[int] = mapped_column(BigInteger)  # µs since epoch, UTC, inclusive
    high: Mapped[int] = mapped_column(BigInteger)  # µs since epoch, UTC, inclusive
    # high - low; NULL when either end is open. The largest span of a parameter bounds ``low``
    # for "after" queries (gt, ge, ap), so they scan an index range instead of all earlier rows.
    span: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SearchNumber(_IndexRow, Base):
    __tablename__ = "search_number"
    __table_args__ = (
        Index("ix_search_number_lookup", "res_type", "param", "low", "resource_pk"),
        Index("ix_search_number_resource", "resource_pk"),
    )
    low: Mapped[float] = mapped_column(Float)  # a single value has low == high; a Range its ends
    high: Mapped[float] = mapped_column(Float)


class SearchQuantity(_IndexRow, Base):
    __tablename__ = "search_quantity"
    __table_args__ = (
        Index("ix_search_quantity_lookup", "res_type", "param", "code", "low", "resource_pk"),
        Index("ix_search_quantity_resource", "resource_pk"),
    )
    low: Mapped[float] = mapped_column(Float)  # a single value has low == high; a Range its ends
    high: Mapped[float] = mapped_column(Float)
    system: Mapped[str | None] = mapped_column(Text, nullable=True)
    code: Mapped[str | None] = mapped_column(Text, nullable=True)
    unit: Mapped[str | None] = mapped_column(Text, nullable=True)


class SearchReference(_IndexRow, Base):
    __tablename__ = "search_reference"
    __table_args__ = (
        Index(
            "ix_search_reference_lookup",
            "res_type",
            "param",
            "target_id",
            "target_type",
            "resource_pk",
        ),
        Index("ix_search_reference_target", "target_type", "target_id"),
        Index("ix_search_reference_resource", "resource_pk"),
    )
    target_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)  # absolute or canonical


class SearchUri(_IndexRow, Base):
    __tablename__ = "search_uri"
    __table_args__ = (
        Index("ix_search_uri_lookup", "res_type", "param", "value", "resource_pk"),
        Index("ix_search_uri_resource", "resource_pk"),
    )
    value: Mapped[str] = mapped_column(Text)


class SearchComposite(_IndexRow, Base):
    """Two-component composites: the first a token (or reference/string as ``c1_code``), the
    second a token/string (``c2_system``/``c2_code``), quantity/number (``c2_low``/``c2_high``,
    unit in ``c2_system``/``c2_code``) or date (``c2_dlow``/``c2_dhigh``)."""

    __tablename__ = "search_composite"
    __table_args__ = (
        Index("ix_search_composite_lookup", "res_type", "param", "c1_code", "c2_code"),
        Index("ix_search_composite_resource", "resource_pk"),
    )
    c1_system: Mapped[str | None] = mapped_column(Text, nullable=True)
    c1_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    c2_system: Mapped[str | None] = mapped_column(Text, nullable=True)
    c2_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    c2_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    c2_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    c2_dlow: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    c2_dhigh: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


INDEX_TABLES = {
    cls.__tablename__: cls.__table__
    for cls in (
        SearchString,
        SearchToken,
        SearchDate,
        SearchNumber,
        SearchQuantity,
        SearchReference,
        SearchUri,
        SearchComposite,
    )
}
