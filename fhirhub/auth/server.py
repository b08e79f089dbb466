"""The authorisation server: client credentials at the token endpoint, and the check of the
access tokens it issued (SMART Backend Services, RFC 6749 §4.4, RFC 7523).

https://hl7.org/fhir/smart-app-launch/backend-services.html

A client proves who it is with its secret (``client_secret_basic``: HTTP Basic, or
``client_secret_post``: ``client_id`` and ``client_secret`` in the form) or with a JWT assertion
(``private_key_jwt``) signed by a key of its registered JWKS. It gets a short-lived access token
with the scopes it asked for, narrowed to those it was registered with. Everything here is free
of HTTP frameworks: ``fhirhub.api.auth_routes`` turns an :class:`OAuthError` into its answer.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx
from joserfc.jwk import KeySet

from fhirhub.auth.assertions import (
    ASSERTION_ALGORITHMS,
    ASSERTION_TYPE,
    ReplayCache,
    client_keys,
    peek_client_id,
    verify_client_assertion,
)
from fhirhub.auth.clients import Client, ClientStore
from fhirhub.auth.errors import AuthError, ClientAssertionError, TokenError
from fhirhub.auth.scopes import ScopeError, format_scopes, narrow, parse_scopes
from fhirhub.auth.secrets import hash_secret, verify_secret
from fhirhub.auth.tokens import AccessToken, SigningKeys, TokenIssuer
from fhirhub.config import Settings

AUTH_METHODS = ("private_key_jwt", "client_secret_basic", "client_secret_post")
JWKS_CACHE_SECONDS = 300  # a client's keys fetched from its URL are used this long
CLIENT_CACHE_SECONDS = 10  # a revoked client's tokens are refused within this long
_JWKS_MAX_BYTES = 64 * 1024
# Checked when the client is unknown, so that its answer takes as long as a wrong secret's.
_DUMMY_HASH = hash_secret("no such client")


class OAuthError(AuthError):
    """An OAuth error response (RFC 6749 §5.2): ``error`` code, status, safe description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


@dataclass(frozen=True)
class Credentials:
    """What a token request presents to authenticate its client."""

    method: str  # one of AUTH_METHODS
    client_id: str
    secret: str | None = None
    assertion: str | None = None


def credentials(form: Mapping[str, str], authorization: str | None) -> Credentials:
    """The one authentication method a token request uses; two, or none, is an error."""
    found: list[Credentials] = []
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            user, _, password = decoded.partition(":")
        except (ValueError, UnicodeError):
            raise _invalid_client("the Basic credentials are malformed") from None
        # RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined
        found.append(Credentials("client_secret_basic", unquote(user), secret=unquote(password)))
    if "client_secret" in form:
        found.append(
            Credentials(
                "client_secret_post", form.get("client_id", ""), secret=form["client_secret"]
            )
        )
    if "client_assertion" in form or "client_assertion_type" in form:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion", "")
        try:
            issuer = peek_client_id(assertion)
        except ClientAssertionError as exc:
            raise _invalid_client(str(exc)) from None
        if form.get("client_id", issuer) != issuer:
            raise _invalid_client("client_id is not the assertion's issuer")
        found.append(Credentials("private_key_jwt", issuer, assertion=assertion))
    if not found:
        raise _invalid_client("no client authentication (a secret or a client assertion)")
    if len(found) > 1:
        raise OAuthError("invalid_request", "use one client authentication method, not several")
    if not found[0].client_id:
        raise _invalid_client("no client_id")
    return found[0]


class JwksFetcher:
    """A client's JWKS fetched from its registered URL, kept :data:`JWKS_CACHE_SECONDS`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def __call__(self, url: str, *, refresh: bool = False) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(url)
        if hit is not None and hit[0] > now and not refresh:
            return hit[1]
        try:
            with httpx.stream("GET", url, timeout=5.0, follow_redirects=False) as response:
                if response.status_code != 200:
                    raise ClientAssertionError(f"the JWKS URL answered {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _JWKS_MAX_BYTES:
                        raise ClientAssertionError("the JWKS at the URL is too large")
            data = json.loads(body)
        except httpx.HTTPError as exc:
            raise ClientAssertionError(
                f"the JWKS URL cannot be fetched ({type(exc).__name__})"
            ) from None
        except ValueError:
            raise ClientAssertionError("the JWKS URL does not serve JSON") from None
        if not isinstance(data, dict):
            raise ClientAssertionError("the JWKS URL does not serve a JWKS")
        with self._lock:
            self._cache[url] = (now + JWKS_CACHE_SECONDS, data)
        return data


class AuthServer:
    """Issues tokens to registered clients and checks the tokens presented to the API."""

    def __init__(
        self,
        keys: SigningKeys,
        store: ClientStore,
        replay_cache: ReplayCache,
        settings: Settings,
        *,
        fetch_jwks: Callable[..., dict[str, Any]] | None = None,
        clock: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        self.keys = keys
        self.store = store
        self.replay_cache = replay_cache
        self.lifetime = settings.auth_token_lifetime
        self.leeway = settings.auth_clock_leeway
        self.fixed_issuer = settings.auth_issuer.rstrip("/") if settings.auth_issuer else None
        self.fetch_jwks = fetch_jwks or JwksFetcher()
        self._clock = clock
        self._issuers: dict[tuple[str, str], TokenIssuer] = {}
        self._clients: dict[str, tuple[float, Client | None]] = {}
        self._verified: dict[tuple[str, str, str], AccessToken] = {}
        self._lock = threading.Lock()

    # --- issuing --------------------------------------------------------------------------

    def issuer(self, issuer: str, audience: str) -> TokenIssuer:
        key = (issuer, audience)
        found = self._issuers.get(key)
        if found is None:
            found = TokenIssuer(
                self.keys,
                issuer=issuer,
                audience=audience,
                lifetime=self.lifetime,
                leeway=self.leeway,
                clock=self._clock,
            )
            if len(self._issuers) < 64:  # a handful of host names at most
                self._issuers[key] = found
        return found

    def token(
        self,
        form: Mapping[str, str],
        authorization: str | None,
        *,
        issuer: str,
        audience: str,
    ) -> dict[str, Any]:
        """The token response to a token request, or :class:`OAuthError`."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type", "only the client_credentials grant is supported"
            )
        creds = credentials(form, authorization)
        client = self.authenticate(creds, token_url=f"{issuer}/token")
        try:
            requested = parse_scopes(form.get("scope", ""))
        except ScopeError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        granted = format_scopes(narrow(requested, parse_scopes(client.scope)))
        if not granted:
            raise OAuthError("invalid_scope", "none of the scopes asked for may be granted")
        value, token = self.issuer(issuer, audience).issue(
            client.client_id,
            scope=granted,
            role=client.role.value,
            organization=client.organization,
        )
        return {
            "access_token": value,
            "token_type": "bearer",
            "expires_in": token.expires_at - token.issued_at,
            "scope": granted,
        }

    def authenticate(self, creds: Credentials, *, token_url: str) -> Client:
        client = self.store.get(creds.client_id)
        if creds.secret is not None:
            stored = client.secret_hash if client is not None else None
            ok = verify_secret(creds.secret, stored or _DUMMY_HASH) and stored is not None
            if client is None or not ok or not client.active:
                raise _invalid_client("unknown client, wrong secret, or a revoked client")
            return client
        if client is None or not client.active:
            raise _invalid_client("unknown or revoked client")
        if client.authentication != "private_key_jwt":
            raise _invalid_client("this client authenticates with its secret")
        assert creds.assertion is not None
        try:
            self._verify_assertion(client, creds.assertion, token_url)
        except ClientAssertionError as exc:
            raise _invalid_client(str(exc)) from None
        return client

    def _verify_assertion(self, client: Client, assertion: str, token_url: str) -> None:
        def verify(keys: KeySet) -> None:
            verify_client_assertion(
                assertion,
                client_id=client.client_id,
                client_keys=keys,
                token_url=token_url,
                replay_cache=self.replay_cache,
                leeway=self.leeway,
                clock=self._clock,
            )

        if client.jwks is not None:
            verify(client_keys(client.jwks))
            return
        assert client.jwks_url is not None
        try:
            verify(client_keys(self.fetch_jwks(client.jwks_url)))
        except ClientAssertionError as exc:
            # a key the cached JWKS lacks may be new: fetch once more (signature failures only;
            # a replay or an expired assertion is not retried)
            if "signature" not in str(exc) and "JWKS" not in str(exc):
                raise
            verify(client_keys(self.fetch_jwks(client.jwks_url, refresh=True)))

    # --- checking -------------------------------------------------------------------------

    def verify_cached(self, value: str, *, issuer: str, audience: str) -> AccessToken:
        """The claims of a bearer token if this server issued it for ``audience`` and it has
        not expired; else :class:`TokenError`. A token verified once is remembered (by its
        exact text) until it expires, so its signature is checked once, not per request."""
        now = self._clock()
        key = (value, issuer, audience)
        with self._lock:
            hit = self._verified.get(key)
        if hit is not None:
            if hit.expires_at + self.leeway >= now:
                return hit
            raise TokenError("the token is not valid here (expired)")
        token = self.issuer(issuer, audience).verify(value)
        with self._lock:
            if len(self._verified) > 8192:
                self._verified = {k: t for k, t in self._verified.items() if t.expires_at >= now}
            self._verified[key] = token
        return token

    def cached_client(self, client_id: str) -> tuple[float, Client | None]:
        """``(until, client)`` when the client was looked up less than
        :data:`CLIENT_CACHE_SECONDS` ago (``until``: the :func:`time.monotonic` time that lookup
        holds until); ``(0.0, None)`` when it must be looked up again (:meth:`load_client`,
        blocking)."""
        with self._lock:
            hit = self._clients.get(client_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit
        return 0.0, None

    def load_client(self, client_id: str) -> tuple[float, Client | None]:
        """The client from the store, remembered for :data:`CLIENT_CACHE_SECONDS` (as
        :meth:`cached_client` returns it)."""
        client = self.store.get(client_id)
        entry = (time.monotonic() + CLIENT_CACHE_SECONDS, client)
        with self._lock:
            if len(self._clients) > 4096:
                self._clients.clear()
            self._clients[client_id] = entry
        return entry

    def now(self) -> int:
        """The time tokens are judged by (seconds since the epoch; a test's clock)."""
        return self._clock()

    def smart_configuration(self, issuer: str) -> dict[str, Any]:
        """``/.well-known/smart-configuration`` (SMART App Launch 2.0, §Conformance)."""
        return {
            "issuer": issuer,
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "scopes_supported": ["system/*.cruds", "system/*.rs", "system/AuditEvent.rs"],
            "response_types_supported": ["token"],
            "capabilities": [
                "client-confidential-asymmetric",
                "client-confidential-symmetric",
                "permission-v2",
            ],
        }
