"""private_key_jwt client assertions (SMART Backend Services)."""

from __future__ import annotations

import base64
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from auth_keys import ec_key, rsa_key
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet

from fhirhub.auth.assertions import (
    MemoryReplayCache,
    client_keys,
    peek_client_id,
    verify_client_assertion,
)
from fhirhub.auth.errors import ClientAssertionError

TOKEN_URL = "https://fhirhub.test/auth/token"
CLIENT = "satusehat-sync"
NOW = 1_800_000_000


def public(*keys: Any) -> KeySet:
    return KeySet.import_key_set({"keys": [k.as_dict(private=False) for k in keys]})


def assertion(key: Any, alg: str, **override: Any) -> str:
    claims = {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": NOW + 240, "jti": "j-1"}
    claims.update(override)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def verify(value: str, keys: KeySet, cache: MemoryReplayCache | None = None) -> dict[str, Any]:
    return verify_client_assertion(
        value,
        client_id=CLIENT,
        client_keys=keys,
        token_url=TOKEN_URL,
        replay_cache=cache or MemoryReplayCache(clock=lambda: NOW),
        clock=lambda: NOW,
    )


@pytest.mark.parametrize(("kind", "alg"), [("EC", "ES384"), ("RSA", "RS384")])
def test_es384_and_rs384_assertions_are_accepted(kind: str, alg: str) -> None:
    key = ec_key("c-ec", "P-384") if kind == "EC" else rsa_key("c-rsa")
    claims = verify(assertion(key, alg), public(key, ec_key("other")))
    assert claims["sub"] == CLIENT and claims["jti"] == "j-1"


def test_the_client_id_can_be_read_before_verifying() -> None:
    assert peek_client_id(assertion(rsa_key("c-rsa"), "RS384")) == CLIENT
    with pytest.raises(ClientAssertionError):
        peek_client_id("garbage")


def test_a_replayed_jti_is_refused() -> None:
    key = ec_key("c-ec", "P-384")
    cache = MemoryReplayCache(clock=lambda: NOW)
    value = assertion(key, "ES384")
    verify(value, public(key), cache)
    with pytest.raises(ClientAssertionError, match="jti already used"):
        verify(value, public(key), cache)
    # the same jti from another client is another key in the cache
    assert cache.first_use("other\x00j-1", NOW + 60)


def test_a_jti_may_return_once_its_assertion_has_expired() -> None:
    clock = [NOW]
    cache = MemoryReplayCache(clock=lambda: clock[0])
    assert cache.first_use("c\x00j", NOW + 10)
    assert not cache.first_use("c\x00j", NOW + 10)
    clock[0] = NOW + 11
    assert cache.first_use("c\x00j", NOW + 300)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"exp": NOW - 60}, "expired"),
        ({"exp": NOW + 600}, "five minutes"),
        ({"exp": None}, "exp"),
        ({"jti": None}, "jti"),
        ({"aud": "https://elsewhere.test/token"}, "aud"),
        ({"iss": "someone-else"}, "iss"),
        ({"sub": "someone-else"}, "sub"),
    ],
)
def test_bad_claims_are_refused(override: dict[str, Any], reason: str) -> None:
    key = ec_key("c-ec", "P-384")
    with pytest.raises(ClientAssertionError, match=reason):
        verify(assertion(key, "ES384", **override), public(key))


def test_a_key_the_client_did_not_register_is_refused() -> None:
    mine, stranger = ec_key("c-ec", "P-384"), ec_key("c-ec2", "P-384")
    with pytest.raises(ClientAssertionError):
        verify(assertion(stranger, "ES384"), public(mine))


def test_other_algorithms_and_alg_none_are_refused() -> None:
    key = ec_key("c-256")  # P-256: ES256, which SMART Backend Services does not list
    with pytest.raises(ClientAssertionError, match="alg"):
        verify(assertion(key, "ES256"), public(key))

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": NOW + 60, "jti": "n"}
    unsigned = f"{b64({'alg': 'none'})}.{b64(claims)}."
    with pytest.raises(ClientAssertionError):
        verify(unsigned, public(key))


def test_a_tampered_assertion_is_refused() -> None:
    key = rsa_key("c-rsa")
    head, _, sig = assertion(key, "RS384").split(".")
    claims = {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": NOW + 60, "jti": "new"}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(ClientAssertionError, match="signature"):
        verify(f"{head}.{body}.{sig}", public(key))


@given(
    st.text(max_size=200)
    | st.from_regex(
        r"[A-Za-z0-9_\-]{0,40}\.[A-Za-z0-9_\-]{0,40}\.[A-Za-z0-9_\-]{0,40}", fullmatch=True
    )
)
def test_any_string_is_refused_with_only_the_typed_error(text: str) -> None:
    key = ec_key("c-ec", "P-384")
    with pytest.raises(ClientAssertionError):
        verify(text, public(key))
    with contextlib.suppress(ClientAssertionError):
        peek_client_id(text)


def test_the_memory_replay_cache_lets_exactly_one_of_concurrent_uses_through() -> None:
    cache = MemoryReplayCache(clock=lambda: NOW)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: cache.first_use("c\x00j", NOW + 60), range(64)))
    assert results.count(True) == 1


def test_a_registered_jwks_is_checked() -> None:
    ec, rsa = ec_key("c-ec", "P-384"), rsa_key("c-rsa")
    keys = client_keys({"keys": [ec.as_dict(private=False), rsa.as_dict(private=False)]})
    assert [k.kid for k in keys.keys] == ["c-ec", "c-rsa"]
    verify(assertion(rsa, "RS384"), keys)


@pytest.mark.parametrize(
    ("jwks", "reason"),
    [
        ({}, "no key"),
        ({"keys": []}, "no key"),
        ({"keys": "x"}, "no key"),
        ({"keys": [{"kty": "EC", "kid": "a"}]}, "not usable"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0" * 6, "kid": "h"}]}, "RSA and EC"),
    ],
)
def test_an_unusable_jwks_is_refused(jwks: dict[str, Any], reason: str) -> None:
    with pytest.raises(ClientAssertionError, match=reason):
        client_keys(jwks)


def test_a_jwks_with_a_private_key_or_without_kids_is_refused() -> None:
    ec = ec_key("c-ec", "P-384")
    with pytest.raises(ClientAssertionError, match="private"):
        client_keys({"keys": [ec.as_dict(private=True)]})
    no_kid = {k: v for k, v in ec.as_dict(private=False).items() if k != "kid"}
    with pytest.raises(ClientAssertionError, match="kid"):
        client_keys({"keys": [no_kid]})
