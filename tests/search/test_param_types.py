# ruff: noqa: E501
"""Every parameter type, modifier and prefix of https://hl7.org/fhir/R4/search.html .

Expected results are worked out by hand from the specification's rules (comments say which),
not read back from the server. Dates without a zone are in WITA (UTC+08:00), fhirhub's choice
for "server-local" time.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from search_helpers import store
from sqlalchemy import Engine

from fhirhub.errors import FhirError
from fhirhub.search import find_matches

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
NIK = "https://fhir.kemkes.go.id/id/nik"


@pytest.fixture
def q(engine: Engine) -> Callable[[str, str], list[str]]:
    """Stores the test city once, then answers ``q(type, query)`` with sorted ids."""
    with engine.begin() as conn:
        for r in _resources():
            store(conn, r)

    def query(res_type: str, query: str) -> list[str]:
        with engine.connect() as conn:
            return sorted(rid for _, rid in find_matches(conn, res_type, query))

    return query


def _obs(oid: str, **fields: object) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final", **fields}


def _resources() -> list[dict]:
    loinc = lambda code: {"coding": [{"system": LOINC, "code": code}]}  # noqa: E731
    qty = lambda v, code, system=UCUM: {"value": v, "unit": code, "system": system, "code": code}  # noqa: E731
    return [
        {"resourceType": "Organization", "id": "pkm", "name": "Puskesmas Wajo"},
        {
            "resourceType": "Patient",
            "id": "p1",
            "meta": {
                "tag": [{"system": "http://dinkes/tag", "code": "spm"}],
                "security": [{"system": "http://sec", "code": "R"}],
                "profile": ["http://fhir.kemkes.go.id/StructureDefinition/Patient"],
                "source": "http://puskesmas-wajo/ehr",
            },
            "identifier": [
                {"system": NIK, "value": "7472010101900001"},
                {"type": {"coding": [{"system": V2, "code": "MR"}]}, "system": "http://rs", "value": "12345"},
            ],
            "name": [{"family": "Muñoz", "given": ["Wa Ode"]}],
            "gender": "female",
            "birthDate": "1990-01-14",
            "active": True,
            "address": [{"city": "Baubau", "line": ["Jl. Betoambari"]}],
            "managingOrganization": {"reference": "Organization/pkm"},
        },
        {
            "resourceType": "Patient",
            "id": "p2",
            "name": [{"family": "Andersén", "given": ["Sitti Aminah"]}],
            "birthDate": "1985",
            "active": False,
        },
        {"resourceType": "Patient", "id": "p3", "name": [{"family": "Munro"}], "gender": "male"},
        # dates (Observation.effective)
        _obs("a", effectiveDateTime="2013-01-13"),
        _obs("b", effectiveDateTime="2013-01-14T10:00:00+08:00"),
        _obs("c", effectiveDateTime="2013-01-15"),
        _obs("d", effectivePeriod={"start": "2013-01-10", "end": "2013-01-20"}),
        _obs("e", effectiveDateTime="2020-01-01"),
        _obs("f", effectiveDateTime="2013-01-14T23:30:00Z"),  # 2013-01-15 07:30 in WITA
        # quantities, codes, subjects
        _obs("q1", code=loinc("8302-2"), valueQuantity=qty(5.4, "mg"), subject={"reference": "Patient/p1"}),
        _obs("q2", code=loinc("8302-2"), valueQuantity=qty(5.4, "g"), subject={"reference": "Patient/p2"}),
        _obs("q3", code=loinc("29463-7"), valueQuantity={"value": 6, "unit": "mg"},
             subject={"reference": "http://other.org/fhir/Patient/9"}),
        _obs("q4", code=loinc("29463-7"), subject={"identifier": {"system": NIK, "value": "7472"}}),
        _obs(
            "bp",
            code=loinc("85354-9"),
            subject={"reference": "Patient/p1"},
            component=[
                {"code": loinc("8480-6"), "valueQuantity": qty(150, "mm[Hg]")},
                {"code": loinc("8462-4"), "valueQuantity": qty(90, "mm[Hg]")},
            ],
        ),
        # tokens with text
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
         "code": {"coding": [{"system": SCT, "code": "123"}], "text": "Demam berdarah"}},
        {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p1"},
         "code": {"coding": [{"code": "123"}]}},
        {"resourceType": "Condition", "id": "c3", "subject": {"reference": "Patient/p2"},
         "code": {"coding": [{"system": ICD, "code": "A90", "display": "Dengue fever"}]}},
        # numbers
        *[
            {"resourceType": "RiskAssessment", "id": f"r{i}", "status": "final",
             "subject": {"reference": "Patient/p1"}, "prediction": [{"probabilityDecimal": v}]}
            for i, v in enumerate([0.1, 0.15, 100, 99.5, 140])
        ],
        # uris
        {"resourceType": "ValueSet", "id": "v1", "status": "active",
         "url": "http://acme.org/fhir/ValueSet/123"},
        {"resourceType": "ValueSet", "id": "v2", "status": "active",
         "url": "http://acme.org/fhir/ValueSet/123/_history/5"},
        {"resourceType": "ValueSet", "id": "v3", "status": "active", "url": "urn:oid:1.2.3"},
        # provenance for nested _has
        {"resourceType": "Provenance", "id": "prov", "recorded": "2024-01-01T00:00:00Z",
         "target": [{"reference": "Observation/q1"}], "agent": [{"who": {"reference": "Practitioner/dr"}}]},
    ]  # fmt: skip


# --- date: search.html#prefix, ranges compared with the value's implicit range ----------------


@pytest.mark.parametrize(
    "query,expected",
    [
        ("eq2013-01-14", "b"),  # contained in the day
        ("2013-01-14", "b"),  # eq is the default
        ("ne2013-01-14", "acdef"),
        ("gt2013-01-14", "cdef"),  # some of the value lies after the day
        ("lt2013-01-14", "ad"),  # some of the value lies before the day
        ("ge2013-01-14", "bcdef"),
        ("le2013-01-14", "abd"),
        ("sa2013-01-14", "cef"),  # starts after the day ends
        ("eb2013-01-14", "a"),  # ends before the day starts
        ("ap2013-01-14", "abcdf"),  # within ~10% of the 13 years to now; not 2020
        ("2013-01", "abcdf"),  # everything inside January
        ("2013-01-14T10:00:00%2B08:00", "b"),
        ("2013-01-14T10:00:00+08:00", "b"),  # an unencoded + (a space) is read as +
        ("2013-01-14T02:00:00Z", "b"),  # the same instant in UTC
        ("2013-01-15", "cf"),  # 23:30Z on the 14th is the 15th in WITA
        ("gt2013-01-14,lt2013-01-11", "cdef"),  # comma: OR; only d starts before the 11th
    ],
)
def test_date_prefixes(q: Callable[[str, str], list[str]], query: str, expected: str) -> None:
    assert q("Observation", f"date={query}&_id=a,b,c,d,e,f") == list(expected)


def test_date_and_combines(q: Callable[[str, str], list[str]]) -> None:
    # two date parameters: both must hold
    assert q("Observation", "date=ge2013-01-13&date=le2013-01-14&_id=a,b,c,d,e,f") == [
        "a",
        "b",
        "d",
    ]


def test_birthdate_precision(q: Callable[[str, str], list[str]]) -> None:
    assert q("Patient", "birthdate=1985") == ["p2"]
    assert q("Patient", "birthdate=1985-06") == []  # the year is not inside June
    assert q("Patient", "birthdate=ap1985-06") == ["p2"]  # but overlaps it
    assert q("Patient", "birthdate=gt1985-06-01") == ["p1", "p2"]  # 1985 extends past June 1


# --- number: precision of the search value (search.html#number) --------------------------------


@pytest.mark.parametrize(
    "query,expected",
    [
        ("100", ["r2", "r3"]),  # [99.5, 100.5)
        ("100.0", ["r2"]),  # [99.95, 100.05)
        ("1e2", ["r2", "r3", "r4"]),  # one significant digit: [50, 150)
        ("1.0e2", ["r2", "r3"]),  # two: [95, 105)
        ("1.4e2", ["r4"]),  # [135, 145)
        ("gt0.1", ["r1", "r2", "r3", "r4"]),
        ("lt0.15", ["r0"]),
        ("ge0.15", ["r1", "r2", "r3", "r4"]),
        ("le0.1", ["r0"]),
        ("ne100", ["r0", "r1", "r4"]),
        ("ap100", ["r2", "r3"]),  # within 10%
        ("sa0.1", ["r1", "r2", "r3", "r4"]),
        ("eb100", ["r0", "r1", "r3"]),
    ],
)
def test_number(q: Callable[[str, str], list[str]], query: str, expected: list[str]) -> None:
    assert q("RiskAssessment", f"probability={query}") == expected


# --- quantity: number|system|code, |unit (search.html#quantity) --------------------------------


@pytest.mark.parametrize(
    "query,expected",
    [
        (f"5.4|{UCUM}|mg", ["q1"]),
        ("5.4", ["q1", "q2"]),
        ("5.4||mg", ["q1"]),  # code or unit mg
        ("gt5.4||mg", ["q3"]),  # 6 mg, unit only
        (f"le5.4|{UCUM}|g", ["q2"]),
        ("ge5.4", ["q1", "q2", "q3"]),
        ("ne5.4", ["q3"]),
    ],
)
def test_quantity(q: Callable[[str, str], list[str]], query: str, expected: list[str]) -> None:
    assert q("Observation", f"value-quantity={query}") == expected


# --- token (search.html#token) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "query,expected",
    [
        ("code=123", ["c1", "c2"]),
        ("code=|123", ["c2"]),  # explicitly no system
        (f"code={SCT}|123", ["c1"]),
        (f"code={ICD}|", ["c3"]),  # any code of the system
        ("code:not=123", ["c3"]),
        ("code:text=dengue", ["c3"]),  # display when there is no text
        ("code:text=demam", ["c1"]),
        ("code:text=BERDARAH", ["c1"]),  # any word, case-insensitive
        ("code=A90,123", ["c1", "c2", "c3"]),
        ("code:missing=false", ["c1", "c2", "c3"]),
    ],
)
def test_token_condition(
    q: Callable[[str, str], list[str]], query: str, expected: list[str]
) -> None:
    assert q("Condition", query) == expected


def test_token_patient(q: Callable[[str, str], list[str]]) -> None:
    assert q("Patient", f"identifier={NIK}|7472010101900001") == ["p1"]
    assert q("Patient", f"identifier:of-type={V2}|MR|12345") == ["p1"]
    assert q("Patient", f"identifier:of-type={V2}|MR|99999") == []
    assert q("Patient", "active=true") == ["p1"]
    assert q("Patient", "active=false") == ["p2"]
    assert q("Patient", "gender:missing=true") == ["p2"]
    assert q("Patient", "gender:missing=false") == ["p1", "p3"]
    assert q("Patient", "gender:not=male") == ["p1", "p2"]  # :not includes those without


def test_meta_parameters(q: Callable[[str, str], list[str]]) -> None:
    assert q("Patient", "_tag=http://dinkes/tag|spm") == ["p1"]
    assert q("Patient", "_security=R") == ["p1"]
    assert q("Patient", "_profile=http://fhir.kemkes.go.id/StructureDefinition/Patient") == ["p1"]
    assert q("Patient", "_source=http://puskesmas-wajo/ehr") == ["p1"]
    assert q("Patient", "_tag:missing=true") == ["p2", "p3"]


# --- string (search.html#string) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "query,expected",
    [
        ("name=mu", ["p1", "p3"]),  # starts with, accents ignored
        ("name=MUÑ", ["p1", "p3"]),
        ("family=munoz", ["p1"]),
        ("name:exact=Muñoz", ["p1"]),
        ("name:exact=muñoz", []),  # exact is case-sensitive
        ("name:contains=ERS", ["p2"]),
        ("name:contains=aminah", ["p2"]),
        ("given=wa", ["p1"]),
        ("address-city=bau", ["p1"]),
        ("address=betoambari", []),  # the line starts with "Jl."
        ("address=jl. betoambari", ["p1"]),
        ("address:contains=betoambari", ["p1"]),
        ("name=munro,andersen", ["p2", "p3"]),
        ("name:missing=true", []),
    ],
)
def test_string(q: Callable[[str, str], list[str]], query: str, expected: list[str]) -> None:
    assert q("Patient", query) == expected


# --- reference (search.html#reference) ---------------------------------------------------------


@pytest.mark.parametrize(
    "query,expected",
    [
        ("subject=Patient/p1", ["bp", "q1"]),
        ("subject=p1", ["bp", "q1"]),
        ("subject:Patient=p1", ["bp", "q1"]),
        ("subject:Group=p1", []),
        ("subject=http://other.org/fhir/Patient/9", ["q3"]),
        (f"subject:identifier={NIK}|7472", ["q4"]),
        ("patient=p2", ["q2"]),
        ("subject:missing=true", ["a", "b", "c", "d", "e", "f"]),
    ],
)
def test_reference(q: Callable[[str, str], list[str]], query: str, expected: list[str]) -> None:
    assert q("Observation", query) == expected


# --- uri (search.html#uri) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query,expected",
    [
        ("url=http://acme.org/fhir/ValueSet/123", ["v1"]),
        ("url:below=http://acme.org/fhir/", ["v1", "v2"]),
        ("url:above=http://acme.org/fhir/ValueSet/123/_history/5", ["v1", "v2"]),
        ("url=urn:oid:1.2.3", ["v3"]),
    ],
)
def test_uri(q: Callable[[str, str], list[str]], query: str, expected: list[str]) -> None:
    assert q("ValueSet", query) == expected


# --- composite (search.html#combining) ---------------------------------------------------------


@pytest.mark.parametrize(
    "query,expected",
    [
        (f"code-value-quantity={LOINC}|8302-2$gt5", ["q1", "q2"]),
        (f"code-value-quantity={LOINC}|8302-2$5.4|{UCUM}|g", ["q2"]),
        ("code-value-quantity=29463-7$6", ["q3"]),
        (f"component-code-value-quantity={LOINC}|8480-6$gt140", ["bp"]),
        (f"component-code-value-quantity={LOINC}|8462-4$gt140", []),  # diastolic is 90
        (f"combo-code-value-quantity={LOINC}|8462-4$90", ["bp"]),
    ],
)
def test_composite(q: Callable[[str, str], list[str]], query: str, expected: list[str]) -> None:
    assert q("Observation", query) == expected


# --- _id, _lastUpdated, chains and _has ---------------------------------------------------------


def test_id(q: Callable[[str, str], list[str]]) -> None:
    assert q("Patient", "_id=p1,p3") == ["p1", "p3"]
    assert q("Patient", "_id=q1") == []  # an Observation's id


def test_chains(q: Callable[[str, str], list[str]]) -> None:
    assert q("Observation", "subject.name=munoz") == ["bp", "q1"]
    assert q("Observation", "subject:Patient.birthdate=1985") == ["q2"]
    # two levels: Observation -> Patient -> Organization
    assert q("Observation", "subject:Patient.organization.name=puskesmas") == ["bp", "q1"]
    assert q("Observation", "patient.organization:Organization.name=nothing") == []


def test_reverse_chains(q: Callable[[str, str], list[str]]) -> None:
    assert q("Patient", "_has:Observation:patient:code=8302-2") == ["p1", "p2"]
    assert q("Patient", f"_has:Observation:patient:code={LOINC}|85354-9") == ["p1"]
    assert q("Patient", "_has:Condition:subject:code:text=dengue") == ["p2"]
    # nested: patients with an Observation that a Provenance by Practitioner/dr targets
    assert q(
        "Patient", "_has:Observation:patient:_has:Provenance:target:agent=Practitioner/dr"
    ) == ["p1"]
    # _has combined with a chain inside
    assert q("Organization", "_has:Patient:organization:_has:Condition:subject:code=123") == ["pkm"]


@pytest.mark.parametrize(
    "res_type,query,param",
    [
        ("Observation", "date=xx2013", "date"),  # unknown prefix
        ("Observation", "date=2013-02-30", "date"),  # no such day
        ("Observation", "date=2013/01/01", "date"),
        ("Observation", "status.name=x", "status.name"),  # chain on a non-reference
        ("Observation", "subject.nonsense=x", "subject.nonsense"),
        ("Observation", "value-quantity=abc", "value-quantity"),
        ("Observation", "code-value-quantity=8302-2", "code-value-quantity"),
        ("Observation", "code:below=x", "code:below"),
        ("Patient", "gender:missing=maybe", "gender:missing"),
        ("Patient", "_has:Nothing:patient:code=1", "_has:Nothing:patient:code"),
        ("Patient", "_has:Observation:status:code=1", "_has:Observation:status:code"),
        ("Patient", "identifier:of-type=only|two", "identifier:of-type"),
        ("RiskAssessment", "probability=ab5", "probability"),
        ("Patient", "_lastUpdated=2024-99", "_lastUpdated"),
    ],
)
def test_bad_input(engine: Engine, res_type: str, query: str, param: str) -> None:
    with engine.connect() as conn, pytest.raises(FhirError) as err:
        find_matches(conn, res_type, query)
    assert err.value.status == 400
    assert err.value.issues[0].expression == (param,)


def test_open_and_long_periods_are_found_by_after_queries(engine: Engine) -> None:
    """gt/ge/ap bound ``low`` by the parameter's largest span; open periods have none."""
    with engine.begin() as conn:
        store(conn, _obs("open", effectivePeriod={"start": "2010-01-01"}))
        store(conn, _obs("long", effectivePeriod={"start": "2000-01-01", "end": "2030-01-01"}))
        store(conn, _obs("point", effectiveDateTime="2024-05-01"))
        store(conn, _obs("old", effectiveDateTime="2001-05-01"))
    with engine.connect() as conn:
        ids = lambda q: sorted(m[1] for m in find_matches(conn, "Observation", q))  # noqa: E731
        assert ids("date=gt2024-01-01") == ["long", "open", "point"]
        assert ids("date=ge2024-05-01") == ["long", "open", "point"]
        assert ids("date=ge2024-01-01&date=lt2024-06-01") == ["long", "open", "point"]
        assert ids("date=ap2024-05-01") == ["long", "open", "point"]
        assert ids("date=sa2023-12-31") == ["point"]


@pytest.mark.parametrize(
    "res_type,query,expected",
    [
        # :missing on every type (search.html#missing)
        ("Observation", "date:missing=true&_id=a,q1", ["q1"]),
        ("Observation", "date:missing=false&_id=a,q1", ["a"]),
        ("RiskAssessment", "probability:missing=false", ["r0", "r1", "r2", "r3", "r4"]),
        ("Observation", "value-quantity:missing=false", ["q1", "q2", "q3"]),
        ("ValueSet", "url:missing=false", ["v1", "v2", "v3"]),
        ("ValueSet", "url:missing=true", []),
        ("Observation", "code-value-quantity:missing=false", ["q1", "q2", "q3"]),
        ("Observation", "component-code-value-quantity:missing=true&_id=bp,q1", ["q1"]),
        # quantity prefixes beyond eq/ne/gt/ge/le
        ("Observation", "value-quantity=sa5.4", ["q3"]),
        ("Observation", "value-quantity=eb6", ["q1", "q2"]),
        ("Observation", "value-quantity=ap5.8", ["q1", "q2", "q3"]),  # within 10% of 5.8
        ("Observation", "value-quantity=ap6.5", ["q3"]),
        ("Observation", "value-quantity=lt6", ["q1", "q2"]),
    ],
)
def test_missing_and_more_prefixes(
    q: Callable[[str, str], list[str]], res_type: str, query: str, expected: list[str]
) -> None:
    assert q(res_type, query) == expected
