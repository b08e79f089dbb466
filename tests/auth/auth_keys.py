"""Key factories for the auth tests: plain functions, keys generated per test session."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from joserfc import jwk

from fhirhub.auth.tokens import SigningKeys, parse_signing_keys


@cache
def _generate(kty: str, size: str | int, kid: str) -> Any:
    return jwk.generate_key(kty, size, parameters={"kid": kid})  # type: ignore[arg-type]


def ec_key(kid: str, curve: str = "P-256") -> Any:
    return _generate("EC", curve, kid)


def rsa_key(kid: str, bits: int = 2048) -> Any:
    return _generate("RSA", bits, kid)


def jwks_text(*keys: Any, private: bool = True) -> str:
    return json.dumps({"keys": [k.as_dict(private=private) for k in keys]})


def signing_keys(*keys: Any) -> SigningKeys:
    return parse_signing_keys(jwks_text(*keys))
