"""The registered clients (``auth_clients``): add, look up, rotate, revoke.

A client authenticates with a secret (``client_secret_basic`` / ``_post``; only its scrypt hash
is stored and the secret is shown once, when it is made) or with a ``private_key_jwt`` assertion
signed by a key of the JWKS it registered, inline or at a URL. Its ``scope`` is the most it may
be granted: what it asked for at registration within what its role allows
(:func:`fhirhub.auth.roles.grant`). A ``facility`` is bound to its Organization and its source
adapter; no other role is.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fhirhub.auth.assertions import client_keys
from fhirhub.auth.errors import AuthError, ClientAssertionError
from fhirhub.auth.roles import Role, grant
from fhirhub.auth.secrets import hash_secret, new_secret
from fhirhub.model.instant import now_us
from fhirhub.model.resource_types import is_valid_id
from fhirhub.storage.client_models import auth_assertion_ids, auth_clients

_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
_ORGANIZATION = re.compile(r"Organization/(?P<id>[A-Za-z0-9\-.]{1,64})")


class ClientError(AuthError, ValueError):
    """A registration that cannot be made as asked (the message says why)."""


@dataclass(frozen=True)
class Client:
    client_id: str
    role: Role
    organization: str | None  # "Organization/<id>" for a facility
    adapter: str | None  # the source adapter a facility's Bundles go through
    secret_hash: str | None
    jwks: dict[str, Any] | None
    jwks_url: str | None
    scope: str
    status: str
    created_at: int
    rotated_at: int | None

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def authentication(self) -> str:
        """How the client proves who it is at the token endpoint."""
        return "private_key_jwt" if self.jwks or self.jwks_url else "client_secret"

    def describe(self) -> dict[str, Any]:
        """What ``fhirhub clients show`` prints: everything but the secret's hash."""
        return {
            "client_id": self.client_id,
            "role": self.role.value,
            "organization": self.organization,
            "adapter": self.adapter,
            "authentication": self.authentication,
            "jwks_url": self.jwks_url,
            "jwks_kids": [k.get("kid") for k in (self.jwks or {}).get("keys", [])],
            "scope": self.scope,
            "status": self.status,
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
        }


def _row_to_client(row: Any) -> Client:
    return Client(
        client_id=row.client_id,
        role=Role(row.role),
        organization=row.organization,
        adapter=row.adapter,
        secret_hash=row.secret_hash,
        jwks=json.loads(row.jwks) if row.jwks else None,
        jwks_url=row.jwks_url,
        scope=row.scope,
        status=row.status,
        created_at=row.created_at,
        rotated_at=row.rotated_at,
    )


def check_organization(value: str) -> str:
    if not _ORGANIZATION.fullmatch(value) or not is_valid_id(value.split("/", 1)[1]):
        raise ClientError(f"organization must read Organization/<id>, not {value!r}")
    return value


def check_jwks(jwks: Any) -> dict[str, Any]:
    """A client's public JWKS, checked as the token endpoint will use it."""
    try:
        client_keys(jwks)
    except ClientAssertionError as exc:
        raise ClientError(str(exc)) from None
    return dict(jwks)


def check_jwks_url(url: str) -> str:
    """An ``https://`` URL (``http://`` only on this machine's loopback, for tests and a
    client running beside the server)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if (
        len(url) > 512
        or not (parts.scheme == "https" or (parts.scheme == "http" and loopback))
        or not host
    ):
        raise ClientError("the JWKS URL must be an https:// URL of at most 512 characters")
    return url


class ClientStore:
    """The ``auth_clients`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        client_id: str,
        role: Role,
        *,
        organization: str | None = None,
        adapter: str | None = None,
        jwks: dict[str, Any] | None = None,
        jwks_url: str | None = None,
        scope: str = "",
    ) -> tuple[Client, str | None]:
        """Register a client; returns it and its secret (``None`` for a JWKS client). The secret
        is not kept: show it once."""
        if not _CLIENT_ID.fullmatch(client_id):
            raise ClientError(
                "a client id is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit"
            )
        if role is Role.facility:
            if organization is None or adapter is None:
                raise ClientError("a facility client needs --organization and --adapter")
        elif organization is not None or adapter is not None:
            raise ClientError("only a facility client is bound to an organization and adapter")
        if organization is not None:
            check_organization(organization)
        if jwks is not None and jwks_url is not None:
            raise ClientError("give a JWKS or a JWKS URL, not both")
        if jwks is not None:
            jwks = check_jwks(jwks)
        if jwks_url is not None:
            check_jwks_url(jwks_url)
        granted = grant(role, scope)
        if not granted:
            raise ClientError(f"the role {role.value} allows none of the scopes asked for")
        secret = None if jwks or jwks_url else new_secret()
        values = {
            "client_id": client_id,
            "role": role.value,
            "organization": organization,
            "adapter": adapter,
            "secret_hash": hash_secret(secret) if secret else None,
            "jwks": json.dumps(jwks) if jwks else None,
            "jwks_url": jwks_url,
            "scope": granted,
            "status": "active",
            "created_at": now_us(),
            "rotated_at": None,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(auth_clients).values(**values))
        except IntegrityError:
            raise ClientError(f"a client {client_id!r} exists already") from None
        return self._get(client_id), secret

    def get(self, client_id: str) -> Client | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(auth_clients).where(auth_clients.c.client_id == client_id)
            ).first()
        return _row_to_client(row) if row is not None else None

    def _get(self, client_id: str) -> Client:
        client = self.get(client_id)
        if client is None:
            raise ClientError(f"no client {client_id!r}")
        return client

    def list(self) -> list[Client]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(auth_clients).order_by(auth_clients.c.client_id)).all()
        return [_row_to_client(r) for r in rows]

    def rotate(
        self,
        client_id: str,
        *,
        jwks: dict[str, Any] | None = None,
        jwks_url: str | None = None,
    ) -> tuple[Client, str | None]:
        """A new credential: a new secret for a secret client (returned, shown once; the old
        one stops working at once), or the new JWKS (or URL) for a JWKS client."""
        client = self._get(client_id)
        if not client.active:
            raise ClientError(f"client {client_id!r} is revoked")
        values: dict[str, Any] = {"rotated_at": now_us()}
        secret = None
        if client.authentication == "client_secret":
            if jwks is not None or jwks_url is not None:
                raise ClientError(f"client {client_id!r} uses a secret, not a JWKS")
            secret = new_secret()
            values["secret_hash"] = hash_secret(secret)
        else:
            if (jwks is None) == (jwks_url is None):
                raise ClientError(f"client {client_id!r} uses a JWKS: give the new JWKS or URL")
            values["jwks"] = json.dumps(check_jwks(jwks)) if jwks is not None else None
            values["jwks_url"] = check_jwks_url(jwks_url) if jwks_url is not None else None
        with self.engine.begin() as conn:
            conn.execute(
                update(auth_clients).where(auth_clients.c.client_id == client_id).values(**values)
            )
        return self._get(client_id), secret

    def revoke(self, client_id: str) -> Client:
        """No more tokens for the client; the tokens it holds run out within their lifetime
        (and are refused at once by a server that checks the client on each request)."""
        self._get(client_id)
        with self.engine.begin() as conn:
            conn.execute(
                update(auth_clients)
                .where(auth_clients.c.client_id == client_id)
                .values(status="revoked", rotated_at=now_us())
            )
        return self._get(client_id)


class DatabaseReplayCache:
    """A :class:`fhirhub.auth.assertions.ReplayCache` in ``auth_assertion_ids``: one for every
    server process, so an assertion used at one worker is refused at the next."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def first_use(self, key: str, expires_at: int) -> bool:
        now = int(time.time())
        # a fixed-size key whatever the jti (PostgreSQL text cannot hold the NUL separator)
        key = hashlib.sha256(key.encode("utf-8")).hexdigest()
        try:
            with self.engine.begin() as conn:
                # what has expired can no longer be replayed: forget it (this key's too)
                expired = auth_assertion_ids.c.expires_at < now
                conn.execute(delete(auth_assertion_ids).where(expired))
                conn.execute(insert(auth_assertion_ids).values(key=key, expires_at=expires_at))
        except IntegrityError:
            return False
        return True
