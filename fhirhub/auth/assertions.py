"""A client's ``private_key_jwt`` assertion (SMART Backend Services, RFC 7523).

https://hl7.org/fhir/smart-app-launch/backend-services.html#request-access-token

The client signs a short JWT with one of the keys of the JWKS it registered: ``RS384`` or
``ES384``, ``iss`` = ``sub`` = its client id, ``aud`` = fhirhub's token URL, ``exp`` no more than
five minutes ahead, and a ``jti`` it never uses again. :func:`verify_client_assertion` checks all
of that; the :class:`ReplayCache` remembers each ``jti`` until its assertion has expired.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from typing import Any, Protocol, cast

from joserfc import jws, jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, KeySet, KeySetSerialization, RSAKey

from fhirhub.auth.errors import ClientAssertionError
from fhirhub.auth.tokens import Clock

#: The algorithms SMART Backend Services requires servers to accept.
ASSERTION_ALGORITHMS = ("RS384", "ES384")
#: How far ahead an assertion's ``exp`` may be (SMART: "no more than five minutes").
MAX_ASSERTION_LIFETIME = 300
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class ReplayCache(Protocol):
    """Remembers the ``jti`` of each accepted assertion while it could still be replayed."""

    def first_use(self, key: str, expires_at: int) -> bool:
        """Record ``key`` until ``expires_at``; ``False`` when it was already recorded (a
        replay). Must be atomic: of two concurrent calls with one key, one gets ``True``."""
        ...


class MemoryReplayCache:
    """A :class:`ReplayCache` for one process (tests, the single-process server)."""

    def __init__(self, clock: Clock = lambda: int(time.time())) -> None:
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def first_use(self, key: str, expires_at: int) -> bool:
        now = self._clock()
        with self._lock:
            if len(self._seen) > 1024:  # forget what can no longer be replayed
                self._seen = {k: exp for k, exp in self._seen.items() if exp >= now}
            if key in self._seen and self._seen[key] >= now:
                return False
            self._seen[key] = expires_at
            return True


def client_keys(jwks: dict[str, Any]) -> KeySet:
    """The public keys a client registers (its JWKS), checked: each an RSA (2048 bits or more)
    or EC key with a ``kid`` of its own, and no private part (a client that sends its private
    key has leaked it). Raises :class:`ClientAssertionError` naming what is wrong."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ClientAssertionError("the client's JWKS holds no key")
    if any(isinstance(k, dict) and "d" in k for k in keys):
        raise ClientAssertionError("the client's JWKS holds a private key")
    kids = [k.get("kid") if isinstance(k, dict) else None for k in keys]
    if not all(isinstance(kid, str) and kid for kid in kids) or len(set(kids)) != len(kids):
        raise ClientAssertionError("every key in the client's JWKS needs a kid of its own")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SecurityWarning)
            key_set = KeySet.import_key_set(cast("KeySetSerialization", {"keys": keys}))
    except (JoseError, ValueError, TypeError, KeyError, SecurityWarning) as exc:
        raise ClientAssertionError(f"the client's JWKS is not usable ({exc})") from None
    if not all(isinstance(k, RSAKey | ECKey) for k in key_set.keys):
        raise ClientAssertionError("the client's JWKS may hold RSA and EC keys only")
    return key_set


def _bad(reason: str) -> ClientAssertionError:
    return ClientAssertionError(f"client assertion refused: {reason}")


def peek_client_id(assertion: str) -> str:
    """The ``iss`` of an assertion, unverified: only to find the client whose keys verify it."""
    try:
        claims = json.loads(jws.extract_compact(assertion.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeError):
        raise _bad("not a JWT") from None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str) or not issuer:
        raise _bad("no iss")
    return issuer


def verify_client_assertion(
    assertion: str,
    *,
    client_id: str,
    client_keys: KeySet,
    token_url: str,
    replay_cache: ReplayCache,
    leeway: int = 30,
    clock: Clock = lambda: int(time.time()),
) -> dict[str, Any]:
    """The claims of ``assertion`` if ``client_id`` made it for ``token_url`` with one of
    ``client_keys`` (its registered JWKS) and it is neither expired, too long-lived nor
    replayed; else :class:`ClientAssertionError`."""
    try:
        header = jws.extract_compact(assertion.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError):
        raise _bad("not a JWT") from None
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise _bad(f"alg must be one of {', '.join(ASSERTION_ALGORITHMS)}")
    try:
        decoded = jwt.decode(assertion, client_keys, algorithms=list(ASSERTION_ALGORITHMS))
    except (JoseError, ValueError, TypeError) as exc:
        raise _bad(f"signature ({type(exc).__name__})") from None
    claims = decoded.claims
    now = clock()
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=leeway,
        iss={"essential": True, "value": client_id},
        sub={"essential": True, "value": client_id},
        aud={"essential": True, "value": token_url},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise _bad(str(exc)) from None
    exp, jti = claims["exp"], claims["jti"]
    if not isinstance(exp, int) or not isinstance(jti, str) or not jti:
        raise _bad("exp must be a number and jti a string")
    if exp > now + MAX_ASSERTION_LIFETIME + leeway:
        raise _bad("exp is more than five minutes ahead")
    if not replay_cache.first_use(f"{client_id}\x00{jti}", exp + leeway):
        raise _bad("jti already used")
    return dict(claims)
