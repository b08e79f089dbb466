"""How far each materialised view is brought (``fhirhub views materialize``).

A materialised view is a table ``view_<name>`` (made from its ViewDefinition, not by a
migration: its columns are the view's) with one row per view row and the ``resources.pk`` it
came from. Its watermark here says up to which ``last_updated`` it is current and for which
definition (``definition_sha256``): a changed definition is rebuilt, otherwise only resources
changed since the watermark are read again.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from fhirhub.storage.models import Base


class ViewWatermark(Base):
    __tablename__ = "view_watermarks"

    view_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(64))
    definition_sha256: Mapped[str] = mapped_column(String(64))
    last_updated: Mapped[int] = mapped_column(BigInteger)  # resources up to here are in it
    refreshed_at: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch
    row_count: Mapped[int] = mapped_column(BigInteger)


view_watermarks = cast(Table, ViewWatermark.__table__)
