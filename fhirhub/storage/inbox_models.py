"""The inbox: every payload a source sent, kept as received (compressed) before it is processed.

A message moves received -> processing (claimed by one worker until ``lease_until``) ->
processed | rejected (its OperationOutcome kept) | failed (the error kept); a processed one keeps
its transaction-response. A message left ``processing`` by a worker that died is claimed again
once its lease has run out. ``(source, checksum)`` is unique, so the
same payload sent again is the same message.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from fhirhub.storage.inbox_status import Status
from fhirhub.storage.models import Base
from fhirhub.storage.types import BigIntPk

STATUSES = tuple(Status)


class InboxMessage(Base):
    __tablename__ = "inbox_messages"
    __table_args__ = (
        Index("uq_inbox_messages_source_checksum", "source", "checksum", unique=True),
        Index("ix_inbox_messages_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))  # the adapter's name
    sender: Mapped[str | None] = mapped_column(String(128), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    received_at: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch, UTC
    # sha256 of the raw payload, or of the message's own key when its adapter gives one (HL7:
    # sending facility + MSH-10), hex
    checksum: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)  # raw bytes
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # zlib-compressed raw bytes
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)  # OperationOutcome JSON
    outcome_status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # its HTTP status
    # The transaction-response Bundle (zlib-compressed JSON), given again to a re-sent Bundle.
    response: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # failure: class and message
    resources: Mapped[int | None] = mapped_column(Integer, nullable=True)  # entries stored
    processed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # While ``processing``: the claim holds until then (microseconds since the epoch, UTC).
    lease_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


inbox_messages = cast(Table, InboxMessage.__table__)
