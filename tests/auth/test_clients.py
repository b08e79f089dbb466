"""The clients table and ``fhirhub clients``: add, list, show, rotate, revoke; the secret shown
once and stored only as a hash; the shared replay cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_keys import ec_key, jwks_text, rsa_key
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from fhirhub.auth.clients import ClientError, ClientStore, DatabaseReplayCache
from fhirhub.auth.roles import Role
from fhirhub.auth.secrets import verify_secret
from fhirhub.cli import app
from fhirhub.config import get_settings

runner = CliRunner()


@pytest.fixture
def store(engine: Engine) -> ClientStore:
    return ClientStore(engine)


def test_a_secret_client_is_stored_with_the_hash_only(store: ClientStore, engine: Engine) -> None:
    client, secret = store.add(
        "pkm-wolio", Role.facility, organization="Organization/pkm-wolio", adapter="puskesmas"
    )
    assert secret and len(secret) >= 40
    assert client.authentication == "client_secret" and client.active
    assert client.secret_hash and verify_secret(secret, client.secret_hash)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM auth_clients")).mappings().one()
    assert secret not in json.dumps(dict(row))
    assert "system/Patient.cruds" in client.scope.split()
    assert "system/AuditEvent.rs" not in client.scope


def test_scope_is_narrowed_to_the_role(store: ClientStore) -> None:
    client, _ = store.add("ana", Role.analyst, scope="system/Observation.rs system/Patient.rs")
    assert client.scope == "system/Observation.rs"
    with pytest.raises(ClientError, match="none of the scopes"):
        store.add("ana2", Role.analyst, scope="system/Patient.rs")


@pytest.mark.parametrize(
    ("role", "kwargs", "message"),
    [
        (Role.facility, {}, "needs --organization and --adapter"),
        (Role.facility, {"organization": "pkm1", "adapter": "x"}, "Organization/<id>"),
        (Role.analyst, {"organization": "Organization/x"}, "only a facility"),
        (Role.sync, {"jwks_url": "http://keys.example/jwks"}, "https://"),
        (Role.sync, {"jwks": {"keys": []}}, "holds no key"),
    ],
)
def test_bad_registrations_are_refused(
    store: ClientStore, role: Role, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ClientError, match=message):
        store.add("c1", role, **kwargs)  # type: ignore[arg-type]
    assert store.list() == []


def test_duplicate_ids_and_bad_ids_are_refused(store: ClientStore) -> None:
    store.add("sync-1", Role.sync)
    with pytest.raises(ClientError, match="exists already"):
        store.add("sync-1", Role.sync)
    with pytest.raises(ClientError, match="client id"):
        store.add("bad id", Role.sync)


def test_rotate_and_revoke(store: ClientStore) -> None:
    _, old = store.add("adm", Role.admin)
    rotated, new = store.rotate("adm")
    assert old and new and old != new
    assert rotated.secret_hash and verify_secret(new, rotated.secret_hash)
    assert not verify_secret(old, rotated.secret_hash)
    assert rotated.rotated_at is not None
    revoked = store.revoke("adm")
    assert revoked.status == "revoked" and not revoked.active
    with pytest.raises(ClientError, match="revoked"):
        store.rotate("adm")


def test_a_jwks_client_rotates_its_keys(store: ClientStore) -> None:
    first = json.loads(jwks_text(rsa_key("k1"), private=False))
    client, secret = store.add("sync-jwt", Role.sync, jwks=first)
    assert secret is None and client.authentication == "private_key_jwt"
    second = json.loads(jwks_text(ec_key("k2", "P-384"), private=False))
    rotated, secret = store.rotate("sync-jwt", jwks=second)
    assert secret is None and rotated.jwks == second
    with pytest.raises(ClientError, match="give the new JWKS"):
        store.rotate("sync-jwt")
    with pytest.raises(ClientError, match="private key"):
        store.rotate("sync-jwt", jwks=json.loads(jwks_text(ec_key("k3"))))


def test_the_replay_cache_is_shared_and_forgets_what_expired(engine: Engine) -> None:
    one, two = DatabaseReplayCache(engine), DatabaseReplayCache(engine)
    assert one.first_use("c\x00jti-1", 4_000_000_000)
    assert not two.first_use("c\x00jti-1", 4_000_000_000)
    assert one.first_use("c\x00jti-old", 1)  # already expired: forgotten at the next use
    assert two.first_use("c\x00jti-old", 4_000_000_000)


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def use_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def test_cli_add_shows_the_secret_once(use_db: str) -> None:
    args = ["clients", "add", "pkm-wolio", "--role", "facility"]
    args += ["--organization", "Organization/pkm-wolio", "--adapter", "puskesmas"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert len(secret) >= 40
    shown = runner.invoke(app, ["clients", "show", "pkm-wolio"])
    assert shown.exit_code == 0 and secret not in shown.stdout
    assert json.loads(shown.stdout)["organization"] == "Organization/pkm-wolio"
    listed = runner.invoke(app, ["clients", "list"])
    assert listed.stdout.split("\t")[:2] == ["pkm-wolio", "facility"]
    rotated = runner.invoke(app, ["clients", "rotate", "pkm-wolio"])
    assert rotated.exit_code == 0 and rotated.stdout.strip().splitlines()[-1] != secret
    revoked = runner.invoke(app, ["clients", "revoke", "pkm-wolio"])
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(app, ["clients", "list"]).stdout


def test_cli_errors_are_one_line(use_db: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["clients", "add", "x", "--role", "facility"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "fhirhub: a facility client needs --organization and --adapter"
    args = ["clients", "add", "x", "--role", "facility", "--organization", "Organization/a"]
    result = runner.invoke(app, [*args, "--adapter", "nosuch"])
    assert result.exit_code == 1 and "no source adapter 'nosuch'" in result.stderr
    result = runner.invoke(app, ["clients", "show", "nobody"])
    assert result.exit_code == 1 and result.stderr.strip() == "fhirhub: no client 'nobody'"
    keys = tmp_path / "jwks.json"
    keys.write_text(jwks_text(rsa_key("k1"), private=False))
    result = runner.invoke(app, ["clients", "add", "s", "--role", "sync", "--jwks", str(keys)])
    assert result.exit_code == 0, result.output
    assert "secret" not in result.stdout
