"""Client secrets: generated at random, shown once, stored only as a salted scrypt hash.

https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1 (``client_secret_basic`` / ``_post``)

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (base64url), so the cost can be raised
later and old hashes still verify. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1  # scrypt cost: about 16 MiB and a few tens of ms per check
_SALT_BYTES = 16
_HASH_BYTES = 32
_SECRET_BYTES = 32  # 256 bits, 43 characters in base64url
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_secret() -> str:
    """A fresh client secret (to show the client once; store only :func:`hash_secret`)."""
    return secrets.token_urlsafe(_SECRET_BYTES)


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_HASH_BYTES
    )


def hash_secret(secret: str) -> str:
    """The text to store for ``secret``: salted scrypt, with its parameters."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(secret, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` is the one ``stored`` was made from. A malformed stored hash never
    matches (rather than raising), so a damaged row locks its client out instead of in."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(secret, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)
