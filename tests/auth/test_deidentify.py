"""An analyst never receives a name, NIK, phone number or street address."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from auth_app import FHIR_JSON, AuthClient
from hypothesis import HealthCheck, given, settings
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


# --- free text ------------------------------------------------------------------------------

_nik = st.from_regex(r"74[0-9]{14}", fullmatch=True)
_phone = st.sampled_from(["+62", "0", "62"]).flatmap(
    lambda prefix: st.from_regex(r"8[1-9][0-9]{8,10}", fullmatch=True).map(lambda n: prefix + n)
)
_person_name = st.sampled_from(["La Ode Muhammad Arsyad", "Wa Ode Nurhayati", "Andi Baso Rahman"])
_street = st.sampled_from(["Jl. Betoambari No. 12", "Jl. Sultan Hasanuddin 4", "Lorong Wolio 7"])
_secret = st.one_of(_nik, _phone, _person_name, _street)
_filler = st.text(alphabet="abcdefghij klmnop.,", max_size=12)


@st.composite
def _sentence(draw: st.DrawFn) -> tuple[str, str]:
    secret = draw(_secret)
    return f"{draw(_filler)} {secret} {draw(_filler)}", secret


def _free_text_slots(text: str) -> dict[str, Any]:
    """Every place a person's identity can be typed into an Observation (and its contained
    QuestionnaireResponse), with ``text`` in it."""
    return {
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{text}</div>',
        },
        "note": [{"text": text, "authorString": text}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": text},
        "valueString": text,
        "comment": text,
        "extension": [{"url": "http://example.org/x", "valueString": text}],
        "interpretation": [{"text": text}],
        "component": [
            {
                "code": {"text": text},
                "valueString": text,
                "extension": [{"url": "u", "valueMarkdown": text}],
            }
        ],
        "contained": [
            {
                "resourceType": "QuestionnaireResponse",
                "id": "q",
                "status": "completed",
                "item": [{"linkId": "1", "text": text, "answer": [{"valueString": text}]}],
            },
            {"resourceType": "Media", "id": "m", "content": {"title": text, "data": text}},
        ],
        "derivedFrom": [{"reference": "DocumentReference/d", "display": text}],
        "device": {"display": text},
        "bodySite": {"text": text},
        "method": {"text": text},
    }


@given(st.lists(_sentence(), min_size=1, max_size=4), st.data())
def test_free_text_never_reaches_an_analyst(sentences: list[tuple[str, str]], data: Any) -> None:
    obs: dict[str, Any] = {"resourceType": "Observation", "id": "o", "status": "final"}
    slots = _free_text_slots("")
    for text, _ in sentences:
        key = data.draw(st.sampled_from(sorted(slots)))
        obs[key] = _free_text_slots(text)[key]
    out = orjson.dumps(scrub(obs)).decode()
    for _, secret in sentences:
        assert secret not in out
    assert scrub(obs)["status"] == "final"


@given(_nik | _phone)
def test_identifier_digits_are_masked_in_any_kept_string(secret: str) -> None:
    coding = {"system": "http://loinc.org", "code": "8867-4", "display": f"nadi {secret}"}
    out = scrub({"resourceType": "Observation", "code": {"coding": [coding]}})
    assert secret not in orjson.dumps(out).decode()
    assert out["code"]["coding"][0]["code"] == "8867-4"


def test_definitional_text_is_kept() -> None:
    measure = {"resourceType": "Measure", "description": "Cakupan imunisasi dasar lengkap"}
    assert scrub(measure) == measure


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sentences=st.lists(_sentence(), min_size=1, max_size=3))
def test_an_analysts_answers_carry_no_free_text_identity(
    auth_app: AuthClient, sentences: list[tuple[str, str]]
) -> None:
    admin = auth_app.headers(auth_app.as_role(Role.admin), **FHIR_JSON)
    analyst = auth_app.headers(auth_app.as_role(Role.analyst))
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "free",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    }
    valid = {k: v for k, v in _free_text_slots(sentences[0][0]).items() if k != "comment"}
    valid["contained"] = valid["contained"][:1]  # a Media's data must be base64
    obs.update(valid)
    obs["note"] = [{"text": text} for text, _ in sentences]
    answer = auth_app.http.put("/fhir/Observation/free", json=obs, headers=admin)
    assert answer.status_code in (200, 201), answer.text
    for path in (
        "/fhir/Observation/free",
        "/fhir/Observation?_id=free",
        "/fhir/Observation/free/_history",
        "/fhir/Observation?code=8867-4&_elements=note,code",
    ):
        answer = auth_app.http.get(path, headers=analyst)
        assert answer.status_code == 200, (path, answer.text)
        for _, secret in sentences:
            assert secret not in answer.text, (path, secret)


# --- views and indicators -----------------------------------------------------------------


def _view(resource: str, *paths: str) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "viewResource",
                "resource": {
                    "resourceType": "ViewDefinition",
                    "resource": resource,
                    "status": "active",
                    "select": [
                        {"column": [{"name": f"c{i}", "path": p} for i, p in enumerate(paths)]}
                    ],
                },
            }
        ],
    }


def test_an_analysts_views_read_no_direct_identifier(auth_app: AuthClient) -> None:
    admin = auth_app.headers(auth_app.as_role(Role.admin), **FHIR_JSON)
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": NAME}],
        "identifier": [{"system": systems.NIK, "value": NIK}],
        "gender": "female",
        "address": [{"use": "home", "line": [STREET], "city": "Baubau", "district": "Wolio"}],
        "extension": [{"url": MAIDEN_NAME, "valueString": NAME}],
    }
    assert auth_app.http.put("/fhir/Patient/p1", json=patient, headers=admin).status_code == 201
    obs = {**OBSERVATION, "note": [{"text": f"{NAME} {PHONE}"}]}
    assert auth_app.http.put("/fhir/Observation/o1", json=obs, headers=admin).status_code == 201
    analyst = auth_app.headers(auth_app.as_role(Role.analyst), **FHIR_JSON)
    run = "/fhir/ViewDefinition/$viewdefinition-run"
    for body in (
        _view("Patient", "name.family"),
        _view("Patient", "identifier.where(system = 'x').value"),
        _view("Patient", "address.line.first()"),
        _view("Patient", "telecom.value"),
        _view("Observation", "note.text"),
        _view("Observation", "subject.display"),
        _view("Observation", "value.ofType(string)"),
        _view("Observation", "text.div"),
        # a choice value of no stated type may be free text: the mother's name, say
        _view("Patient", f"extension('{MAIDEN_NAME}').value"),
        _view("Patient", "extension.value.ofType(FHIR.string)"),
        _view("Observation", "value"),
    ):
        answer = auth_app.http.post(run, json=body, headers=analyst)
        assert answer.status_code == 403, answer.text
        assert answer.json()["issue"][0]["code"] == "forbidden"
    # what an indicator needs is allowed, in every format; the admin's view is not checked
    for fmt in ("json", "ndjson", "csv"):
        answer = auth_app.http.post(
            f"{run}?_format={fmt}",
            json=_view("Patient", "gender", "address.where(use = 'home').district.first()"),
            headers=analyst,
        )
        assert answer.status_code == 200, answer.text
        assert "female" in answer.text and "Wolio" in answer.text
        assert NAME not in answer.text and NIK not in answer.text
    answer = auth_app.http.get(
        "/fhir/ViewDefinition/patient-demographics/$viewdefinition-run", headers=analyst
    )
    assert answer.status_code == 200, answer.text
    answer = auth_app.http.post(run, json=_view("Patient", "name.family"), headers=admin)
    assert answer.status_code == 200 and NAME in answer.text
    answer = auth_app.http.post(
        run, json=_view("Organization", "name", "identifier.value"), headers=analyst
    )
    assert answer.status_code == 200, answer.text


MAIDEN_NAME = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ("value.ofType(Quantity).value", False),
        ("value.ofType(Quantity).unit", False),
        ("valueQuantity.value", False),
        ("extension('village').value.ofType(code)", False),
        ("answer.value.ofType(FHIR.integer)", False),
        ("extension('x').value", True),
        ("value", True),
        ("value.first()", True),
        ("value.ofType(markdown)", True),
        ("item.answer.value", True),
    ],
)
def test_view_refusal_of_a_choice_value_by_its_type(path: str, refused: bool) -> None:
    from fhirhub.auth.deidentify import view_refusal

    view = _view("Observation", path)["parameter"][0]["resource"]
    assert (view_refusal(view) is not None) is refused


def test_view_refusal_ignores_quoted_text() -> None:
    from fhirhub.auth.deidentify import view_refusal

    view = _view("Observation", "code.coding.where(system = 'name').code")
    assert view_refusal(view["parameter"][0]["resource"]) is None
    view = _view("Observation", "code.coding.display")
    assert view_refusal(view["parameter"][0]["resource"]) is not None


def test_an_analysts_subject_list_names_subjects_by_reference_only(auth_app: AuthClient) -> None:
    admin = auth_app.headers(auth_app.as_role(Role.admin), **FHIR_JSON)
    administrative = "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode"
    patient = {
        "resourceType": "Patient",
        "id": "hiv1",
        "name": [{"text": NAME}],
        "identifier": [{"system": systems.NIK, "value": NIK}],
        "telecom": [{"system": "phone", "value": PHONE}],
        "gender": "female",
        "birthDate": "1990-05-01",
        "address": [
            {
                "line": [STREET],
                "extension": [
                    {
                        "url": administrative,
                        "extension": [{"url": "village", "valueCode": "7472011007"}],
                    }
                ],
            }
        ],
    }
    test = {
        "resourceType": "Observation",
        "id": "hiv1-test",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1"}]},
        "subject": {"reference": "Patient/hiv1", "display": NAME},
        "effectiveDateTime": "2025-03-01T09:00:00+08:00",
        "note": [{"text": f"{NAME} {PHONE}"}],
    }
    for r in (patient, test):
        answer = auth_app.http.put(f"/fhir/{r['resourceType']}/{r['id']}", json=r, headers=admin)
        assert answer.status_code in (200, 201), answer.text
    analyst = auth_app.headers(auth_app.as_role(Role.analyst))
    answer = auth_app.http.get(
        "/fhir/Measure/spm-12/$evaluate-measure",
        params={
            "periodStart": "2025-01-01",
            "periodEnd": "2025-12-31",
            "reportType": "subject-list",
        },
        headers=analyst,
    )
    assert answer.status_code == 200, answer.text
    for secret in (NAME, NIK, PHONE, STREET):
        assert secret not in answer.text
    lists = [c for c in answer.json().get("contained", []) if c["resourceType"] == "List"]
    items = [e["item"] for x in lists for e in x.get("entry", [])]
    assert items and all(set(i) == {"reference"} for i in items)
