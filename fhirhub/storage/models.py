"""The resource tables: the current state of every resource and every version of it.

Times are integers of microseconds since the Unix epoch (UTC): exact, ordered and compared the
same way on PostgreSQL and SQLite, which matters to sync jobs paging by ``_lastUpdated``.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fhirhub.storage.types import BigIntPk, JsonText

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Resource(Base):
    """One row per logical resource: its current version."""

    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("res_type", "res_id", name="uq_resources_type_id"),
        Index("ix_resources_type_updated", "res_type", "last_updated"),
    )

    pk: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    res_type: Mapped[str] = mapped_column(String(64))
    res_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column()
    last_updated: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # The current body as JSONB (PostgreSQL) for SQL over resources: views and indicators.
    # Reads serve the exact text kept in resource_versions.
    content: Mapped[str | None] = mapped_column(JsonText, nullable=True)


class ResourceVersion(Base):
    """Every version of every resource, deletes included (with no body)."""

    __tablename__ = "resource_versions"
    __table_args__ = (
        Index("ix_resource_versions_updated", "last_updated"),
        Index("ix_resource_versions_type_updated", "res_type", "last_updated"),
    )

    resource_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("resources.pk", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(primary_key=True)
    res_type: Mapped[str] = mapped_column(String(64))
    res_id: Mapped[str] = mapped_column(String(64))
    last_updated: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(8))  # POST, PUT, PATCH or DELETE
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    content: Mapped[str | None] = mapped_column(Text, nullable=True)  # exactly as stored


resources = cast(Table, Resource.__table__)
resource_versions = cast(Table, ResourceVersion.__table__)
