"""Client secrets: random, hashed with salt, checked in constant time."""

from __future__ import annotations

import pytest

from fhirhub.auth.secrets import hash_secret, new_secret, verify_secret


def test_new_secrets_are_long_and_distinct() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and len(a) >= 43


def test_the_hash_verifies_its_secret_only() -> None:
    secret = new_secret()
    stored = hash_secret(secret)
    assert secret not in stored and stored.startswith("scrypt$")
    assert verify_secret(secret, stored)
    assert not verify_secret(secret + "x", stored)
    assert not verify_secret("", stored)


def test_the_same_secret_hashes_differently_each_time() -> None:
    secret = new_secret()
    assert hash_secret(secret) != hash_secret(secret)  # salted


@pytest.mark.parametrize(
    "stored", ["", "plain", "scrypt$1$2$3", "md5$16384$8$1$AAAA$AAAA", "scrypt$x$8$1$AA$AA"]
)
def test_a_malformed_stored_hash_never_matches(stored: str) -> None:
    assert not verify_secret("anything", stored)
