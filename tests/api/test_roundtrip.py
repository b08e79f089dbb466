"""Round trip: what a client writes reads back as it was written, apart from meta.versionId and
meta.lastUpdated, for generated resources of many types, decimals' digits included."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhirhub.model.json import FhirDecimal, dumps, loads

H = {"content-type": "application/fhir+json"}

# FHIR strings: some non-whitespace, no control characters; Indonesian names and accents too.
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=30
).filter(lambda s: s.strip() == s and s != "")
code = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,11}", fullmatch=True)
uri = st.sampled_from(
    [
        "http://loinc.org",
        "http://snomed.info/sct",
        "https://fhir.kemkes.go.id/id/nik",
        "http://hl7.org/fhir/sid/icd-10",
        "urn:oid:2.16.840.1.113883.6.1",
    ]
)
date = st.dates().map(lambda d: d.isoformat())
date_time = st.builds(
    lambda d, frac: d.strftime("%Y-%m-%dT%H:%M:%S") + frac + "+08:00",
    st.datetimes(min_value=datetime(1900, 1, 1)),
    st.sampled_from(["", ".5", ".123", ".123456"]),
)
decimal = st.builds(
    lambda whole, frac, neg: FhirDecimal(("-" if neg else "") + f"{whole}.{frac}"),
    st.integers(0, 10_000),
    st.from_regex(r"[0-9]{1,4}", fullmatch=True),
    st.booleans(),
)
coding = st.fixed_dictionaries({"system": uri, "code": code}, optional={"display": text})
concept = st.fixed_dictionaries(
    {}, optional={"coding": st.lists(coding, min_size=1, max_size=3), "text": text}
).filter(bool)
identifier = st.fixed_dictionaries({"system": uri, "value": text})
reference = st.builds(
    lambda t, i: {"reference": f"{t}/{i}"},
    st.sampled_from(["Patient", "Practitioner", "Organization"]),
    code,
)
quantity = st.fixed_dictionaries(
    {"value": decimal},
    optional={"unit": text, "system": st.just("http://unitsofmeasure.org"), "code": code},
)
extension = st.fixed_dictionaries(
    {"url": st.just("https://fhir.kemkes.go.id/r4/StructureDefinition/Example")},
    optional={"valueString": text},
).filter(lambda e: len(e) == 2)
human_name = st.fixed_dictionaries(
    {},
    optional={
        "text": text,
        "family": text,
        "given": st.lists(text, min_size=1, max_size=3),
        "prefix": st.lists(
            st.sampled_from(["La", "Wa", "La Ode", "Wa Ode"]), min_size=1, max_size=1
        ),
    },
).filter(bool)


def _resource(res_type: str, required: dict, optional: dict) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {"resourceType": st.just(res_type), **required},
        optional={"extension": st.lists(extension, min_size=1, max_size=2), **optional},
    )


resources = st.one_of(
    _resource(
        "Patient",
        {},
        {
            "identifier": st.lists(identifier, min_size=1, max_size=3),
            "active": st.booleans(),
            "name": st.lists(human_name, min_size=1, max_size=2),
            "gender": st.sampled_from(["male", "female", "other", "unknown"]),
            "birthDate": date,
            "multipleBirthInteger": st.integers(1, 5),
        },
    ),
    _resource(
        "Observation",
        {"status": st.sampled_from(["final", "amended"]), "code": concept},
        {
            "subject": reference,
            "effectiveDateTime": date_time,
            "valueQuantity": quantity,
            "category": st.lists(concept, min_size=1, max_size=2),
        },
    ),
    _resource(
        "Condition",
        {"subject": reference},
        {"code": concept, "onsetDateTime": date_time, "recordedDate": date_time},
    ),
    _resource(
        "Encounter",
        {"status": st.sampled_from(["finished", "in-progress"]), "class": coding},
        {"subject": reference, "type": st.lists(concept, min_size=1, max_size=2)},
    ),
    _resource(
        "Immunization",
        {
            "status": st.just("completed"),
            "vaccineCode": concept,
            "patient": reference,
            "occurrenceDateTime": date_time,
        },
        {"doseQuantity": quantity, "lotNumber": text},
    ),
    _resource(
        "Organization",
        {},
        {
            "name": text,
            "identifier": st.lists(identifier, min_size=1, max_size=2),
            "active": st.booleans(),
        },
    ),
    _resource("Location", {}, {"name": text, "description": text}),
    _resource("Practitioner", {}, {"name": st.lists(human_name, min_size=1, max_size=2)}),
)


def _canonical(resource: dict[str, Any]) -> bytes:
    """The resource without the server's bookkeeping, keys sorted, decimals as written."""
    meta = {
        k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")
    }
    body = {k: v for k, v in resource.items() if k not in ("meta", "id")}
    if meta:
        body["meta"] = meta
    return dumps(body, sort_keys=True)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(resource=resources)
def test_resources_read_back_as_written(client: TestClient, resource: dict) -> None:
    sent = dumps(resource)
    created = client.post(f"/fhir/{resource['resourceType']}", content=sent, headers=H)
    assert created.status_code == 201, created.text
    read = client.get(f"/fhir/{resource['resourceType']}/{created.json()['id']}")
    assert read.status_code == 200
    assert _canonical(loads(read.content)) == _canonical(loads(sent))
