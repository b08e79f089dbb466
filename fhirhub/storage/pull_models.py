"""Where each pull from a source database stopped: one watermark per source and database.

A pull (``fhirhub pull khanza``) reads rows past its watermark, keeps each in the inbox, and
moves the watermark on once they are kept; a pull that is stopped resumes from it. ``target``
is the sha256 of the database's URL without its password (a changed password is the same
database); ``location`` is that URL, shown to operators. ``position`` is the source's own
cursor, text that sorts in reading order (the Khanza puller writes ``<date>T<time>|<no_rawat>``).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from fhirhub.storage.models import Base


class PullWatermark(Base):
    __tablename__ = "pull_watermarks"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)  # the puller's name
    target: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the URL
    location: Mapped[str] = mapped_column(String(512))  # the URL without its password
    position: Mapped[str] = mapped_column(String(256))
    rows: Mapped[int] = mapped_column(BigInteger, default=0)  # rows kept by all pulls so far
    updated_at: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch, UTC


pull_watermarks = cast(Table, PullWatermark.__table__)
