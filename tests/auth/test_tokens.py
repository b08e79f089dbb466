"""Access tokens: issue and verify, key rotation, expiry, audience, tampering, the settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from auth_keys import ec_key, jwks_text, rsa_key, signing_keys
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt

from fhirhub.auth.errors import AuthConfigError, TokenError
from fhirhub.auth.tokens import (
    TOKEN_ALGORITHMS,
    AccessToken,
    TokenIssuer,
    load_signing_keys,
    parse_signing_keys,
)
from fhirhub.config import Settings

ISS = "https://fhirhub.test/auth"
AUD = "https://fhirhub.test/fhir"
NOW = 1_800_000_000


def issuer(*keys: object, clock: int = NOW, aud: str = AUD, iss: str = ISS) -> TokenIssuer:
    return TokenIssuer(
        signing_keys(*keys), issuer=iss, audience=aud, lifetime=300, leeway=30, clock=lambda: clock
    )


def _issue(ti: TokenIssuer) -> tuple[str, AccessToken]:
    return ti.issue(
        "pkm-wolio", scope="system/Patient.rs", role="facility", organization="Organization/pkm1"
    )


def test_issue_then_verify_round_trips_the_claims() -> None:
    ti = issuer(ec_key("k1"))
    value, token = _issue(ti)
    assert ti.verify(value) == token
    assert token.expires_at == NOW + 300 and token.issued_at == NOW
    claims = jwt.decode(value, ti.keys.keys, algorithms=TOKEN_ALGORITHMS).claims
    assert set(claims) == {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "scope",
        "role",
        "organization",
    }
    assert claims["sub"] == "pkm-wolio" and claims["role"] == "facility"


def test_each_token_has_its_own_jti() -> None:
    ti = issuer(ec_key("k1"))
    assert _issue(ti)[1].token_id != _issue(ti)[1].token_id


def test_a_client_without_organization_has_no_organization_claim() -> None:
    ti = issuer(rsa_key("r1"))
    value, _ = ti.issue("analyst-1", scope="system/Observation.rs", role="analyst")
    assert ti.verify(value).organization is None
    assert "organization" not in jwt.decode(value, ti.keys.keys, algorithms=TOKEN_ALGORITHMS).claims


def test_newest_key_signs_and_a_retired_but_listed_key_still_verifies() -> None:
    old, new = ec_key("2026-01"), rsa_key("2026-06")
    before = issuer(old)
    old_token, _ = _issue(before)
    after = issuer(new, old)  # rotation: the new key first, the old one still listed
    new_token, _ = _issue(after)
    assert (
        jwt.decode(new_token, after.keys.keys, algorithms=TOKEN_ALGORITHMS).header["kid"]
        == "2026-06"
    )
    assert after.verify(old_token).client_id == "pkm-wolio"
    assert after.verify(new_token).client_id == "pkm-wolio"


def test_a_token_from_an_unlisted_key_does_not_verify() -> None:
    old_token, _ = _issue(issuer(ec_key("2026-01")))
    with pytest.raises(TokenError):
        issuer(rsa_key("2026-06")).verify(old_token)
    # same kid, another key: the signature fails
    with pytest.raises(TokenError):
        issuer(ec_key("2026-01", "P-384")).verify(old_token)


def test_expiry_allows_the_leeway_and_no_more() -> None:
    value, token = _issue(issuer(ec_key("k1")))
    assert issuer(ec_key("k1"), clock=token.expires_at + 29).verify(value) == token
    with pytest.raises(TokenError, match="expired"):
        issuer(ec_key("k1"), clock=token.expires_at + 31).verify(value)


def test_wrong_audience_or_issuer_is_refused() -> None:
    value, _ = _issue(issuer(ec_key("k1")))
    with pytest.raises(TokenError, match="aud"):
        issuer(ec_key("k1"), aud="https://other.test/fhir").verify(value)
    with pytest.raises(TokenError, match="iss"):
        issuer(ec_key("k1"), iss="https://other.test/auth").verify(value)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_tampered_payload_is_refused() -> None:
    ti = issuer(ec_key("k1"))
    value, token = _issue(ti)
    head, _, sig = value.split(".")
    forged = {**token.claims(), "role": "admin", "scope": "system/*.cruds"}
    with pytest.raises(TokenError):
        ti.verify(f"{head}.{_b64(forged)}.{sig}")


def test_alg_none_and_garbage_are_refused() -> None:
    ti = issuer(ec_key("k1"))
    _, token = _issue(ti)
    unsigned = f"{_b64({'alg': 'none', 'kid': 'k1', 'typ': 'at+jwt'})}.{_b64(token.claims())}."
    for value in (unsigned, "", "a.b.c", "not a token"):
        with pytest.raises(TokenError):
            ti.verify(value)


def test_an_hmac_token_keyed_with_the_public_key_is_refused() -> None:
    # the classic key-confusion forgery: HS256 with the published public key as the secret
    key = rsa_key("r1")
    ti = issuer(key)
    _, token = _issue(ti)
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'r1', 'typ': 'at+jwt'})}.{_b64(token.claims())}"
    mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(TokenError):
        ti.verify(forged)


def test_a_client_assertion_is_not_an_access_token() -> None:
    key = ec_key("k1")
    ti = issuer(key)
    _, token = _issue(ti)
    other = jwt.encode({"alg": "ES256", "kid": "k1"}, token.claims(), key, algorithms=["ES256"])
    with pytest.raises(TokenError, match="not an access token"):
        ti.verify(other)


def test_missing_signing_keys_refuse_to_start() -> None:
    with pytest.raises(AuthConfigError, match="no default"):
        load_signing_keys(Settings(auth_signing_keys=None))
    with pytest.raises(AuthConfigError, match="cannot read"):
        load_signing_keys(Settings(auth_signing_keys="/nonexistent/keys.json"))


def test_signing_keys_load_inline_or_from_a_file(tmp_path: Path) -> None:
    text = jwks_text(ec_key("k1"), rsa_key("r1"))
    inline = load_signing_keys(Settings(auth_signing_keys=text))
    assert [k.kid for k in inline.keys.keys] == ["k1", "r1"]
    path = tmp_path / "keys.json"
    path.write_text(text)
    assert load_signing_keys(Settings(auth_signing_keys=str(path))).current.kid == "k1"
    public = inline.public_jwks()["keys"]
    assert [k["alg"] for k in public] == ["ES256", "RS384"]
    assert all("d" not in k for k in public)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not a JSON Web Key Set"),
        ('{"keys": []}', "no key"),
        (jwks_text(ec_key("k1"), ec_key("k1")), "kid"),
        (jwks_text(ec_key("k1"), private=False), "no private part"),
        (
            json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0" * 6, "kid": "h"}]}),
            "only RSA, EC or OKP",
        ),
    ],
)
def test_unusable_signing_keys_are_a_config_error(text: str, message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        parse_signing_keys(text)


def test_a_short_rsa_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_numbers()

    def b64int(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    pub = numbers.public_numbers
    jwk = {"kty": "RSA", "kid": "weak", "n": b64int(pub.n), "e": b64int(pub.e)}
    jwk |= {
        name: b64int(getattr(numbers, attr))
        for name, attr in [
            ("d", "d"),
            ("p", "p"),
            ("q", "q"),
            ("dp", "dmp1"),
            ("dq", "dmq1"),
            ("qi", "iqmp"),
        ]
    }
    with pytest.raises(AuthConfigError, match="2048"):
        parse_signing_keys(json.dumps({"keys": [jwk]}))


_FUZZ_ISSUER = issuer(ec_key("k1"))


@given(st.text(max_size=200))
def test_any_string_is_refused_with_only_token_error(text: str) -> None:
    with pytest.raises(TokenError):
        _FUZZ_ISSUER.verify(text)


def test_the_token_carries_its_scopes() -> None:
    ti = issuer(ec_key("k1"))
    value, _ = ti.issue("c", scope="system/Patient.rs system/Observation.s", role="sync")
    assert [str(s) for s in ti.verify(value).scopes()] == [
        "system/Patient.rs",
        "system/Observation.s",
    ]


def test_a_token_with_a_malformed_scope_is_refused() -> None:
    ti = issuer(ec_key("k1"))
    value, _ = ti.issue("c", scope="system/Patient.bogus", role="sync")
    with pytest.raises(TokenError, match="scope"):
        ti.verify(value)


def test_lifetime_and_leeway_settings_are_bounded() -> None:
    with pytest.raises(ValueError):
        Settings(auth_token_lifetime=0)
    with pytest.raises(ValueError):
        Settings(auth_clock_leeway=-1)
