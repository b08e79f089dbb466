"""An analyst never receives a name, NIK, phone number or street address."""

from __future__ import annotations

from auth_app import FHIR_JSON, AuthClient
from hypothesis import given
from hypothesis import strategies as st

from fhirhub.auth.deidentify import scrub
from fhirhub.auth.roles import Role
from fhirhub.model import systems

NAME, NIK, PHONE, STREET = (
    "Wa Ode Sitti Hasnah",
    "7472015505900001",
    "+6281234567890",
    "Jl. Betoambari 12",
)

OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"text": "tekanan darah"},
    "text": {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{NAME}</div>',
    },
    "subject": {
        "reference": "Patient/p1",
        "display": NAME,
        "identifier": {"system": systems.NIK, "value": NIK},
    },
    "contained": [
        {
            "resourceType": "Patient",
            "id": "c1",
            "name": [{"text": NAME}],
            "identifier": [
                {"system": systems.NIK, "value": NIK},
                {"system": "urn:other", "value": "keep-me"},
            ],
            "telecom": [{"system": "phone", "value": PHONE}],
            "address": [{"line": [STREET], "city": "Baubau", "district": "Betoambari"}],
        }
    ],
    "valueQuantity": {"value": 120, "unit": "mmHg"},
}
PRACTITIONER = {
    "resourceType": "Practitioner",
    "id": "pr1",
    "name": [{"family": NAME}],
    "telecom": [{"system": "phone", "value": PHONE}],
}


def test_an_analyst_gets_no_direct_identifier(auth_app: AuthClient) -> None:
    admin = auth_app.headers(auth_app.as_role(Role.admin), **FHIR_JSON)
    for r in (OBSERVATION, PRACTITIONER):
        answer = auth_app.http.put(f"/fhir/{r['resourceType']}/{r['id']}", json=r, headers=admin)
        assert answer.status_code in (200, 201), answer.text
    analyst = auth_app.headers(auth_app.as_role(Role.analyst), **{"accept-encoding": "gzip"})
    for path in (
        "/fhir/Observation/o1",
        "/fhir/Observation?_id=o1",
        "/fhir/Practitioner",
        "/fhir/Observation/o1/_history/1",
        "/fhir/Observation/_history",
    ):
        answer = auth_app.http.get(path, headers=analyst)
        assert answer.status_code == 200, (path, answer.text)
        text = answer.text
        for secret in (NAME, NIK, PHONE, STREET):
            assert secret not in text, (path, secret)
        assert "Baubau" in text or "Practitioner" in path
    body = auth_app.http.get("/fhir/Observation/o1", headers=analyst).json()
    assert body["valueQuantity"]["value"] == 120
    assert body["contained"][0]["identifier"] == [{"system": "urn:other", "value": "keep-me"}]
    # the same resource read by the admin: untouched
    whole = auth_app.http.get("/fhir/Observation/o1", headers=admin).text
    assert NAME in whole and NIK in whole and PHONE in whole and STREET in whole


def test_a_large_analyst_answer_is_still_gzipped(auth_app: AuthClient) -> None:
    admin = auth_app.headers(auth_app.as_role(Role.admin), **FHIR_JSON)
    for i in range(20):
        auth_app.http.put(
            f"/fhir/Observation/o{i}", json={**OBSERVATION, "id": f"o{i}"}, headers=admin
        )
    analyst = auth_app.headers(auth_app.as_role(Role.analyst), **{"accept-encoding": "gzip"})
    answer = auth_app.http.get("/fhir/Observation", headers=analyst)
    assert answer.headers.get("content-encoding") == "gzip"
    assert answer.json()["total"] == 20 and NAME not in answer.text
    assert int(answer.headers["content-length"]) < len(answer.text)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "text",
                    "display",
                    "reference",
                    "identifier",
                    "address",
                    "line",
                    "telecom",
                    "value",
                    "div",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(_json)
def test_scrub_is_idempotent_and_never_grows(value: object) -> None:
    once = scrub(value)
    assert scrub(once) == once
    assert len(repr(once)) <= len(repr(value))
