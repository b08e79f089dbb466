"""Stored XSS and security headers (issue 10, item 8)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

SCRIPT = b"<html><body><script>alert(document.cookie)</script></body></html>"


def _stored_message(client: TestClient, body: bytes, content_type: str) -> int:
    """A message kept in the inbox as the sender sent it, with the Content-Type it declared."""
    r = client.post("/ingest/puskesmas", content=body, headers={"content-type": content_type})
    assert r.status_code in (202, 400, 422), r.text
    listed = client.get("/admin/inbox").json()["messages"]
    return int(max(m["id"] for m in listed))


def test_a_payload_sent_as_html_is_a_download_never_a_page(client: TestClient) -> None:
    message_id = _stored_message(client, SCRIPT, "text/html")
    r = client.get(f"/admin/inbox/{message_id}/payload")
    assert r.status_code == 200
    assert r.content == SCRIPT  # the bytes as received
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_a_payload_of_a_known_type_keeps_it_as_a_download(client: TestClient) -> None:
    message_id = _stored_message(client, b'{"resourceType": "Bundle"}', "application/fhir+json")
    r = client.get(f"/admin/inbox/{message_id}/payload")
    assert r.headers["content-type"] == "application/fhir+json"
    assert r.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize(
    "path", ["/fhir/metadata", "/fhir/Patient/missing", "/healthz", "/admin/inbox", "/nowhere"]
)
def test_every_response_has_the_security_headers(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp


def test_swagger_ui_still_loads_under_its_policy(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    # what the page loads is allowed by its policy
    assert "https://cdn.jsdelivr.net" in r.text
    assert "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net" in csp
    assert client.get("/openapi.json").status_code == 200
