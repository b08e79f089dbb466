"""fhirhub's access tokens: short-lived JWTs (RFC 9068 claims) signed with a rotating key set.

https://hl7.org/fhir/smart-app-launch/backend-services.html#issue-access-token

The signing keys come from ``FHIRHUB_AUTH_SIGNING_KEYS`` (:func:`load_signing_keys`): the first
key signs, every listed key verifies, so keys rotate without downtime: put the new key first,
keep the old one listed for one token lifetime, then drop it. A token whose ``kid`` is not
listed does not verify. Only asymmetric keys are accepted, so the public half can be published
as a JWKS and nothing that verifies a token can also forge one.
"""

from __future__ import annotations

import json
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, KeySet, KeySetSerialization, OKPKey, RSAKey

from fhirhub.auth.errors import AuthConfigError, TokenError
from fhirhub.auth.scopes import Scope, ScopeError, parse_scopes
from fhirhub.config import Settings

Clock = Callable[[], int]
_SIGNING_KEY_TYPES = (RSAKey, ECKey, OKPKey)
_EC_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
#: The algorithms a signing key may use, by key type (``none`` and HMAC are never accepted).
TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", *_EC_ALG.values())
TOKEN_ALGORITHMS += ("EdDSA",)
_MIN_RSA_BITS = 2048


def _now() -> int:
    return int(time.time())


@dataclass(frozen=True)
class SigningKeys:
    """The key set of :data:`FHIRHUB_AUTH_SIGNING_KEYS`: ``keys[0]`` signs, all verify."""

    keys: KeySet

    @property
    def current(self) -> RSAKey | ECKey | OKPKey:
        key = self.keys.keys[0]
        assert isinstance(key, _SIGNING_KEY_TYPES)
        return key

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS to publish (public halves only, with ``alg`` and ``use``)."""
        out = []
        for key in self.keys.keys:
            jwk = key.as_dict(private=False)
            jwk.update(alg=algorithm_of(key), use="sig")
            out.append(jwk)
        return {"keys": out}


def algorithm_of(key: Any) -> str:
    """The JWS algorithm a key signs with: its ``alg`` member, else the usual one for its type."""
    alg = key.alg if isinstance(key.alg, str) else None
    if alg is None:
        if isinstance(key, RSAKey):
            alg = "RS384"
        elif isinstance(key, ECKey):
            alg = _EC_ALG.get(key.curve_name, "")
        elif isinstance(key, OKPKey):
            alg = "EdDSA"
    if alg not in TOKEN_ALGORITHMS:
        raise AuthConfigError(f"signing key {key.kid!r}: algorithm {alg!r} is not allowed")
    return str(alg)


def parse_signing_keys(text: str) -> SigningKeys:
    """A private JWK set; raises :class:`AuthConfigError` naming what is wrong (never the key)."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not data.get("keys"):
            raise AuthConfigError("FHIRHUB_AUTH_SIGNING_KEYS holds no key")
        with warnings.catch_warnings():
            warnings.simplefilter("error", SecurityWarning)  # a weak key is refused, not used
            keys = KeySet.import_key_set(cast("KeySetSerialization", data))
    except (ValueError, TypeError, KeyError, JoseError, SecurityWarning) as exc:
        raise AuthConfigError(
            f"FHIRHUB_AUTH_SIGNING_KEYS is not a usable JSON Web Key Set ({exc})"
            if isinstance(exc, SecurityWarning)
            else f"FHIRHUB_AUTH_SIGNING_KEYS is not a JSON Web Key Set ({type(exc).__name__})"
        ) from None
    kids = [key.kid for key in keys.keys]
    if any(not kid for kid in kids) or len(set(kids)) != len(kids):
        raise AuthConfigError("two signing keys share a `kid` (it defaults to the thumbprint)")
    for key in keys.keys:
        if not isinstance(key, _SIGNING_KEY_TYPES):
            raise AuthConfigError(f"signing key {key.kid!r}: only RSA, EC or OKP keys")
        if not key.is_private:
            raise AuthConfigError(f"signing key {key.kid!r} has no private part")
        if isinstance(key, RSAKey) and key.raw_value.key_size < _MIN_RSA_BITS:
            raise AuthConfigError(f"signing key {key.kid!r}: RSA keys need {_MIN_RSA_BITS} bits")
        algorithm_of(key)
    return SigningKeys(keys)


def load_signing_keys(settings: Settings) -> SigningKeys:
    """The signing keys from the settings: inline JSON, or the path of a file holding it.

    There is no default key: none configured is an :class:`AuthConfigError`, which the server
    turns into a refusal to start when auth is on."""
    value = (settings.auth_signing_keys or "").strip()
    if not value:
        raise AuthConfigError("FHIRHUB_AUTH_SIGNING_KEYS is not set; there is no default key")
    if not value.startswith("{"):
        path = Path(value)
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthConfigError(
                f"FHIRHUB_AUTH_SIGNING_KEYS: cannot read the key file ({exc.strerror})"
            ) from None
    return parse_signing_keys(value)


@dataclass(frozen=True)
class AccessToken:
    """The claims of a verified access token."""

    issuer: str
    client_id: str  # sub
    audience: str
    expires_at: int
    issued_at: int
    token_id: str  # jti
    scope: str
    role: str
    organization: str | None  # "Organization/<id>" for a facility, else None

    def scopes(self) -> tuple[Scope, ...]:
        """The granted scopes (:func:`fhirhub.auth.scopes.allows` checks an interaction)."""
        return parse_scopes(self.scope)

    def claims(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.client_id,
            "aud": self.audience,
            "exp": self.expires_at,
            "iat": self.issued_at,
            "jti": self.token_id,
            "scope": self.scope,
            "role": self.role,
        }
        if self.organization is not None:
            out["organization"] = self.organization
        return out


class TokenIssuer:
    """Issues and verifies fhirhub's access tokens for one issuer and audience."""

    def __init__(
        self,
        keys: SigningKeys,
        *,
        issuer: str,
        audience: str,
        lifetime: int = 300,
        leeway: int = 30,
        clock: Clock = _now,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self.leeway = leeway
        self._clock = clock

    def issue(
        self, client_id: str, *, scope: str, role: str, organization: str | None = None
    ) -> tuple[str, AccessToken]:
        """A signed token and its claims; ``jti`` is random, ``exp`` is ``lifetime`` ahead."""
        now = self._clock()
        token = AccessToken(
            issuer=self.issuer,
            client_id=client_id,
            audience=self.audience,
            expires_at=now + self.lifetime,
            issued_at=now,
            token_id=secrets.token_urlsafe(16),
            scope=scope,
            role=role,
            organization=organization,
        )
        key = self.keys.current
        alg = algorithm_of(key)
        header = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
        return jwt.encode(header, token.claims(), key, algorithms=[alg]), token

    def verify(self, value: str) -> AccessToken:
        """The claims of ``value`` if a listed key signed it, it has not expired (give or take
        ``leeway``), and it is fhirhub's (``iss``) for this server (``aud``); else
        :class:`TokenError`."""
        try:
            decoded = jwt.decode(value, self.keys.keys, algorithms=list(TOKEN_ALGORITHMS))
        except (JoseError, ValueError, TypeError) as exc:
            raise TokenError(f"the token does not verify ({type(exc).__name__})") from None
        if decoded.header.get("typ") != "at+jwt":
            raise TokenError("the token is not an access token")
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=self._clock,
            leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise TokenError(f"the token is not valid here ({exc})") from None
        if not isinstance(claims.get("scope"), str) or not isinstance(claims.get("role"), str):
            raise TokenError("the token has no scope or role")
        try:
            parse_scopes(claims["scope"])
        except ScopeError:
            raise TokenError("the token's scope is malformed") from None
        organization = claims.get("organization")
        if organization is not None and not isinstance(organization, str):
            raise TokenError("the token's organization is not a reference")
        if not all(isinstance(claims[k], str) for k in ("sub", "jti")):
            raise TokenError("the token's sub and jti must be strings")
        return AccessToken(
            issuer=claims["iss"],
            client_id=claims["sub"],
            audience=self.audience,
            expires_at=int(claims["exp"]),
            issued_at=int(claims["iat"]),
            token_id=claims["jti"],
            scope=claims["scope"],
            role=claims["role"],
            organization=organization,
        )
