"""/auth/token (client credentials: secret, Basic or form, and private_key_jwt),
/.well-known/smart-configuration and /auth/jwks."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from auth_app import FORM, SERVER_KEY, AuthClient
from auth_keys import ec_key, jwks_text, rsa_key
from joserfc import jwt
from joserfc.jwk import KeySet

from fhirhub.auth.roles import Role

TOKEN_URL = "http://testserver/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _post(app: AuthClient, form: str, **headers: str) -> Any:
    return app.http.post("/auth/token", content=form, headers={**FORM, **headers})


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_smart_configuration_and_jwks(auth_app: AuthClient) -> None:
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        conf = auth_app.http.get(path).json()
        assert conf["token_endpoint"] == TOKEN_URL
        assert conf["jwks_uri"] == "http://testserver/auth/jwks"
        assert "private_key_jwt" in conf["token_endpoint_auth_methods_supported"]
        assert conf["grant_types_supported"] == ["client_credentials"]
    keys = auth_app.http.get("/auth/jwks").json()["keys"]
    assert [k["kid"] for k in keys] == [SERVER_KEY]
    assert all("d" not in k for k in keys)


def test_client_secret_basic_and_post(auth_app: AuthClient) -> None:
    secret = auth_app.register("pkm-wolio", Role.facility)
    assert secret
    answer = _post(
        auth_app, "grant_type=client_credentials", authorization=_basic("pkm-wolio", secret)
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert answer.headers["cache-control"] == "no-store"
    jwks = KeySet.import_key_set(auth_app.http.get("/auth/jwks").json())
    claims = jwt.decode(body["access_token"], jwks).claims
    assert claims["sub"] == "pkm-wolio" and claims["role"] == "facility"
    assert claims["organization"] == "Organization/pkm-wolio"
    assert claims["aud"] == "http://testserver/fhir" and claims["iss"] == "http://testserver/auth"
    posted = _post(
        auth_app,
        f"grant_type=client_credentials&client_id=pkm-wolio&client_secret={secret}"
        "&scope=system/Patient.rs system/Measure.rs",
    )
    assert posted.status_code == 200, posted.text
    assert posted.json()["scope"] == "system/Patient.rs"  # narrowed to what the role allows


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ("grant_type=client_credentials&client_id=pkm&client_secret=wrong", 401, "invalid_client"),
        ("grant_type=client_credentials&client_id=nobody&client_secret=x", 401, "invalid_client"),
        ("grant_type=client_credentials", 401, "invalid_client"),
        ("grant_type=password&client_id=pkm&client_secret=x", 400, "unsupported_grant_type"),
        ("grant_type=client_credentials&grant_type=client_credentials", 400, "invalid_request"),
    ],
)
def test_bad_token_requests(auth_app: AuthClient, form: str, status: int, error: str) -> None:
    auth_app.register("pkm", Role.facility)
    answer = _post(auth_app, form)
    assert answer.status_code == status and answer.json()["error"] == error


def test_a_scope_outside_the_clients_is_refused(auth_app: AuthClient) -> None:
    secret = auth_app.register("ana", Role.analyst)
    assert secret
    answer = _post(
        auth_app,
        "grant_type=client_credentials&scope=system/Patient.rs",
        authorization=_basic("ana", secret),
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"
    answer = _post(
        auth_app, "grant_type=client_credentials&scope=bogus", authorization=_basic("ana", secret)
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"


def test_a_revoked_client_gets_no_token(auth_app: AuthClient) -> None:
    secret = auth_app.register("adm", Role.admin)
    assert secret
    auth_app.store.revoke("adm")
    answer = _post(auth_app, "grant_type=client_credentials", authorization=_basic("adm", secret))
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")


# --- private_key_jwt ----------------------------------------------------------------------


def _assertion(key: Any, alg: str = "RS384", client: str = "sync-jwt", **override: Any) -> str:
    now = int(time.time())
    claims = {"iss": client, "sub": client, "aud": TOKEN_URL, "exp": now + 240}
    claims["jti"] = f"jti-{time.monotonic_ns()}"
    claims.update(override)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def _jwt_form(assertion: str, scope: str = "system/Patient.rs") -> str:
    return (
        f"grant_type=client_credentials&scope={scope}&client_assertion_type={ASSERTION_TYPE}"
        f"&client_assertion={assertion}"
    )


@pytest.fixture
def jwt_client(auth_app: AuthClient) -> Any:
    key = rsa_key("sync-key-1")
    jwks = json.loads(jwks_text(key, ec_key("sync-key-2", "P-384"), private=False))
    assert auth_app.register("sync-jwt", Role.sync, jwks=jwks) is None
    return key


def test_private_key_jwt_gets_a_token(auth_app: AuthClient, jwt_client: Any) -> None:
    answer = _post(auth_app, _jwt_form(_assertion(jwt_client)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "system/Patient.rs"
    es384 = _assertion(ec_key("sync-key-2", "P-384"), alg="ES384")
    assert _post(auth_app, _jwt_form(es384)).status_code == 200


def _refused(auth_app: AuthClient, assertion: str) -> str:
    answer = _post(auth_app, _jwt_form(assertion))
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"
    return str(answer.json()["error_description"])


def test_a_replayed_assertion_is_refused(auth_app: AuthClient, jwt_client: Any) -> None:
    once = _assertion(jwt_client, jti="same")
    assert _post(auth_app, _jwt_form(once)).status_code == 200
    assert "jti already used" in _refused(auth_app, once)


def test_bad_assertions_are_refused(auth_app: AuthClient, jwt_client: Any) -> None:
    now = int(time.time())
    assert "exp" in _refused(auth_app, _assertion(jwt_client, exp=now - 3600))
    assert "aud" in _refused(auth_app, _assertion(jwt_client, aud="https://elsewhere/token"))
    assert "five minutes" in _refused(auth_app, _assertion(jwt_client, exp=now + 3600))
    # signed with a key the client did not register, under a registered kid
    impostor = rsa_key("impostor-key")
    forged = jwt.encode(
        {"alg": "RS384", "kid": "sync-key-1"},
        {"iss": "sync-jwt", "sub": "sync-jwt", "aud": TOKEN_URL, "exp": now + 60, "jti": "f1"},
        impostor,
        algorithms=["RS384"],
    )
    assert "signature" in _refused(auth_app, forged)
    # alg none: a header, claims and no signature
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    claims = {"iss": "sync-jwt", "sub": "sync-jwt", "aud": TOKEN_URL, "exp": now + 60, "jti": "n"}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert "alg" in _refused(auth_app, f"{header}.{body}.")
    # RS256 is not one of SMART's algorithms
    assert "alg" in _refused(auth_app, _assertion(jwt_client, alg="RS256"))
    # another client's id in the assertion
    assert _post(auth_app, _jwt_form(_assertion(jwt_client, client="nobody"))).status_code == 401


def test_a_secret_client_cannot_use_an_assertion(auth_app: AuthClient) -> None:
    auth_app.register("sec", Role.sync)
    key = rsa_key("sync-key-1")
    assert "secret" in _refused(auth_app, _assertion(key, client="sec"))


class _JwksHandler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, type[_JwksHandler]]]:
    handler = type("Handler", (_JwksHandler,), {})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", handler
    server.shutdown()
    server.server_close()


def test_a_jwks_url_is_fetched_and_refetched_for_a_new_key(
    auth_app: AuthClient, jwks_server: tuple[str, Any]
) -> None:
    url, handler = jwks_server
    old, new = rsa_key("url-key-1"), ec_key("url-key-2", "P-384")
    handler.body = jwks_text(old, private=False).encode()
    auth_app.register("url-sync", Role.sync, jwks_url=url)
    assert _post(auth_app, _jwt_form(_assertion(old, client="url-sync"))).status_code == 200
    handler.body = jwks_text(new, private=False).encode()  # the client rotated its keys
    signed = _assertion(new, alg="ES384", client="url-sync")
    assert _post(auth_app, _jwt_form(signed)).status_code == 200
