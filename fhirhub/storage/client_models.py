"""The registered OAuth clients (issue 13) and the assertion ids already used.

A client is one system that calls fhirhub: a Puskesmas or the RSUD (role ``facility``, bound to
its Organization and its source adapter), an analyst's tool, the stewards' review, the national
sync jobs, an administrator. It authenticates with a secret (kept as a scrypt hash only) or with
a JWT assertion signed by a key of its registered JWKS (inline, or fetched from its URL).
``scope`` is the most it may be granted, within its role's. A revoked client keeps its row (the
audit trail names it) and gets no token.

``auth_assertion_ids`` is the replay cache of ``private_key_jwt`` assertions, shared by every
server process: a ``jti`` is kept until its assertion has expired, and its primary key makes a
second use fail however many processes race for it.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from fhirhub.storage.models import Base

CLIENT_STATUSES = ("active", "revoked")


class AuthClient(Base):
    __tablename__ = "auth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    organization: Mapped[str | None] = mapped_column(String(128), nullable=True)
    adapter: Mapped[str | None] = mapped_column(String(32), nullable=True)
    secret_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    jwks: Mapped[str | None] = mapped_column(Text, nullable=True)  # the public JWKS, JSON
    jwks_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    scope: Mapped[str] = mapped_column(Text)  # SMART v2 scopes, space-separated
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch, UTC
    rotated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AuthAssertionId(Base):
    __tablename__ = "auth_assertion_ids"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of client id, jti
    expires_at: Mapped[int] = mapped_column(BigInteger)  # seconds since the epoch


auth_clients = cast(Table, AuthClient.__table__)
auth_assertion_ids = cast(Table, AuthAssertionId.__table__)
