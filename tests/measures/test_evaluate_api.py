"""``$evaluate-measure`` over hand-made records: persons counted once through the patient index's
Person resources (a Patient no Person links counts as itself), WITA dates, subject lists, one
Puskesmas, and every bad input answered 4xx with an OperationOutcome saying what and where."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhirhub.api.app import create_app
from fhirhub.config import Settings

FHIR = {"content-type": "application/fhir+json"}
ADMIN = "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode"
PKM01_KELURAHAN = "7472011007"  # in the working area of PKM01 (measures/puskesmas-areas.json)
PKM03_KELURAHAN = "7472011014"
HIV = "/fhir/Measure/spm-12/$evaluate-measure"
YEAR = {"periodStart": "2025-01-01", "periodEnd": "2025-12-31"}


def _put(client: TestClient, resource: dict[str, Any]) -> None:
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    answer = client.put(url, json=resource, headers=FHIR)
    assert answer.status_code in (200, 201), answer.text


def _patient(pid: str, kelurahan: str = PKM01_KELURAHAN, gender: str = "female") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "gender": gender,
        "birthDate": "1990-05-01",
        "address": [
            {
                "extension": [
                    {"url": ADMIN, "extension": [{"url": "village", "valueCode": kelurahan}]}
                ]
            }
        ],
    }


def _hiv_test(oid: str, patient: str, when: str, status: str = "final") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueCodeableConcept": {"text": "negative"},
    }


def _count(group: dict[str, Any], code: str) -> int | None:
    for pop in group["population"]:
        if pop["code"]["coding"][0]["code"] == code:
            return int(pop["count"])
    return None


def _strata(group: dict[str, Any], name: str) -> dict[str, dict[str, int]]:
    for s in group["stratifier"]:
        if s["code"][0]["coding"][0]["code"] == name:
            return {
                st["value"]["text"]: {
                    p["code"]["coding"][0]["code"]: p["count"] for p in st["population"]
                }
                for st in s.get("stratum", [])
            }
    raise AssertionError(name)


@pytest.fixture
def three_records(client: TestClient) -> TestClient:
    """One woman with three records (three facilities), each with an HIV test in 2025."""
    for i in (1, 2, 3):
        _put(client, _patient(f"a{i}"))
        _put(client, _hiv_test(f"hiv-a{i}", f"a{i}", f"2025-0{i}-10T09:00:00+08:00"))
    return client


def test_a_patient_no_person_links_counts_as_itself(three_records: TestClient) -> None:
    answer = three_records.get(HIV, params=YEAR)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["resourceType"] == "MeasureReport"
    assert report["type"] == "summary"
    assert report["period"] == {"start": "2025-01-01", "end": "2025-12-31"}
    group = report["group"][0]
    assert _count(group, "initial-population") == 3
    assert _count(group, "numerator") == 3


def test_a_person_with_three_records_counts_once(three_records: TestClient) -> None:
    _put(
        three_records,
        {
            "resourceType": "Person",
            "id": "p1",
            "link": [{"target": {"reference": f"Patient/a{i}"}} for i in (1, 2, 3)],
        },
    )
    _put(three_records, _patient("b", PKM03_KELURAHAN, "male"))  # linked by no Person
    answer = three_records.get(HIV, params={**YEAR, "reportType": "subject-list"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["type"] == "subject-list"
    group = report["group"][0]
    assert _count(group, "initial-population") == 2
    assert _count(group, "numerator") == 1
    lists = {c["id"]: c for c in report["contained"]}
    numerator = next(
        p for p in group["population"] if p["code"]["coding"][0]["code"] == "numerator"
    )
    listed = lists[numerator["subjectResults"]["reference"][1:]]
    assert [e["item"]["reference"] for e in listed["entry"]] == ["Person/p1"]
    ip = next(
        p for p in group["population"] if p["code"]["coding"][0]["code"] == "initial-population"
    )
    assert [
        e["item"]["reference"] for e in lists[ip["subjectResults"]["reference"][1:]]["entry"]
    ] == [
        "Patient/b",
        "Person/p1",
    ]
    # demographics of the master record: the Person's own, where it has them
    assert _strata(group, "puskesmas") == {
        "PKM01": {"initial-population": 1, "numerator": 1},
        "PKM03": {"initial-population": 1, "numerator": 0},
    }
    assert _strata(group, "sex") == {
        "female": {"initial-population": 1, "numerator": 1},
        "male": {"initial-population": 1, "numerator": 0},
    }
    assert _strata(group, "kelurahan")[PKM01_KELURAHAN]["numerator"] == 1
    assert _strata(group, "age-group") == {"35-39": {"initial-population": 2, "numerator": 1}}


@pytest.mark.index_on
def test_records_the_running_index_links_count_once(client: TestClient) -> None:
    """End to end: three records of one woman (one NIK) from three facilities, linked by the
    patient index as they are written, count as one person; another woman counts apart."""
    nik = {"system": "https://fhir.kemkes.go.id/id/nik", "value": "7472014105900003"}
    other = {"system": "https://fhir.kemkes.go.id/id/nik", "value": "7472024207880001"}
    for i in (1, 2, 3):
        mrn = {"system": f"https://fhirhub.baubaukota.go.id/sid/mrn/clinic{i}", "value": f"{i}"}
        body = {**_patient(f"a{i}"), "identifier": [nik, mrn], "name": [{"text": "Wa Ode Sitti"}]}
        _put(client, body)
        _put(client, _hiv_test(f"hiv-a{i}", f"a{i}", f"2025-0{i}-10T09:00:00+08:00"))
    b = {**_patient("b"), "identifier": [other], "name": [{"text": "Siti Aminah"}]}
    b["birthDate"] = "1988-07-02"
    _put(client, b)
    persons = client.get("/fhir/Person", params={"link": "Patient/a1"}).json()["entry"]
    assert len(persons[0]["resource"]["link"]) == 3
    report = client.get(HIV, params=YEAR).json()
    group = report["group"][0]
    assert _count(group, "initial-population") == 2
    assert _count(group, "numerator") == 1


def test_the_person_s_demographics_win_over_its_records(three_records: TestClient) -> None:
    _put(
        three_records,
        {
            "resourceType": "Person",
            "id": "p1",
            "gender": "male",
            "birthDate": "2000-02-01",
            "address": [
                {
                    "extension": [
                        {
                            "url": ADMIN,
                            "extension": [{"url": "village", "valueCode": PKM03_KELURAHAN}],
                        }
                    ]
                }
            ],
            "link": [{"target": {"reference": f"Patient/a{i}"}} for i in (1, 2, 3)],
        },
    )
    group = three_records.get(HIV, params=YEAR).json()["group"][0]
    assert _strata(group, "sex") == {"male": {"initial-population": 1, "numerator": 1}}
    assert _strata(group, "puskesmas") == {"PKM03": {"initial-population": 1, "numerator": 1}}
    assert _strata(group, "age-group") == {"25-29": {"initial-population": 1, "numerator": 1}}


def test_dates_are_baubau_local_and_status_counts(client: TestClient) -> None:
    # 2024-12-31 17:00 UTC is 1 January 2025 in Baubau; 2025-12-31 16:30 UTC is 2026 there
    for pid, when, status in (
        ("in", "2024-12-31T17:00:00Z", "final"),
        ("out", "2025-12-31T16:30:00+00:00", "final"),
        ("prelim", "2025-06-01", "preliminary"),
        ("amended", "2025-06-01", "amended"),
    ):
        _put(client, _patient(pid))
        _put(client, _hiv_test(f"hiv-{pid}", pid, when, status))
    answer = client.get(HIV, params={**YEAR, "reportType": "subject-list"})
    report = answer.json()
    group = report["group"][0]
    assert _count(group, "numerator") == 2
    numerator = next(c for c in report["contained"] if c["id"] == "numerator")
    assert sorted(e["item"]["reference"] for e in numerator["entry"]) == [
        "Patient/amended",
        "Patient/in",
    ]


def test_one_subject_and_one_puskesmas(three_records: TestClient) -> None:
    _put(three_records, _patient("b", PKM03_KELURAHAN))
    _put(three_records, _hiv_test("hiv-b", "b", "2025-04-01"))
    one = three_records.get(HIV, params={**YEAR, "subject": "Patient/b", "reportType": "subject"})
    assert one.status_code == 200, one.text
    report = one.json()
    assert report["type"] == "individual"
    assert report["subject"] == {"reference": "Patient/b"}
    assert _count(report["group"][0], "numerator") == 1
    pkm = three_records.get(HIV, params={**YEAR, "organization": "PKM03"}).json()
    assert pkm["reporter"] == {
        "identifier": {"system": "https://fhirhub.baubaukota.go.id/sid/facility", "value": "PKM03"}
    }
    assert _count(pkm["group"][0], "initial-population") == 1
    assert set(_strata(pkm["group"][0], "puskesmas")) == {"PKM03"}


def test_post_parameters(three_records: TestClient) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "periodStart", "valueDate": "2025-01-01"},
            {"name": "periodEnd", "valueDate": "2025-03-31"},
        ],
    }
    answer = three_records.post(HIV, json=body, headers=FHIR)
    assert answer.status_code == 200, answer.text
    assert answer.json()["period"] == {"start": "2025-01-01", "end": "2025-03-31"}
    assert _count(answer.json()["group"][0], "numerator") == 3
    month = three_records.get(HIV, params={"periodStart": "2025-02"}).json()
    assert month["period"] == {"start": "2025-02-01", "end": "2025-02-28"}
    assert _count(month["group"][0], "numerator") == 1


def test_every_measure_at_once(client: TestClient) -> None:
    answer = client.get("/fhir/Measure/$evaluate-measure", params={"periodStart": "2025"})
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert bundle["resourceType"] == "Bundle"
    ids = [e["resource"]["measure"].split("|")[0].rsplit("/", 1)[1] for e in bundle["entry"]]
    assert len(ids) == 22 and "spm-01" in ids and "dq-01" in ids


def _outcome(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    return dict(body["issue"][0])


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"periodStart": "2025-06-01", "periodEnd": "2025-01-01"}, "periodEnd"),
        ({"periodStart": "2000-01-01", "periodEnd": "2019-12-31"}, "periodEnd"),
        ({"periodStart": "2025-13-01"}, "periodStart"),
        ({"periodStart": "1 Jan 2025"}, "periodStart"),
        ({"periodStart": "2025", "periodEnd": "2025-02-30"}, "periodEnd"),
        ({"periodEnd": "2025-12-31"}, "periodStart"),
        ({**YEAR, "reportType": "everything"}, "reportType"),
        ({**YEAR, "colour": "red"}, "colour"),
        ({**YEAR, "subject": "Observation/x"}, "subject"),
    ],
)
def test_bad_parameters(client: TestClient, params: dict[str, str], where: str) -> None:
    issue = _outcome(client.get(HIV, params=params), 400)
    assert issue["expression"] == [where]
    assert issue["diagnostics"]


def test_unknown_measure_subject_and_organization(client: TestClient) -> None:
    issue = _outcome(client.get("/fhir/Measure/spm-99/$evaluate-measure", params=YEAR), 404)
    assert "spm-99" in issue["diagnostics"]
    _outcome(client.get(HIV, params={**YEAR, "subject": "Patient/nobody"}), 404)
    _outcome(client.get(HIV, params={**YEAR, "organization": "Organization/nowhere"}), 404)
    issue = _outcome(
        client.get(
            "/fhir/Measure/morb-01/$evaluate-measure", params={**YEAR, "subject": "Patient/x"}
        ),
        400,
    )
    assert issue["expression"] == ["subject"]


def test_bad_bodies(client: TestClient) -> None:
    issue = _outcome(client.post(HIV, json={"resourceType": "Patient"}, headers=FHIR), 400)
    assert issue["expression"] == ["Parameters"]
    issue = _outcome(
        client.post(
            HIV,
            json={"resourceType": "Parameters", "parameter": [{"name": "periodStart"}]},
            headers=FHIR,
        ),
        400,
    )
    assert issue["expression"] == ["Parameters.parameter[0]"]
    _outcome(client.post(HIV, content=b"{not json", headers=FHIR), 400)
    _outcome(
        client.post(HIV, content=b"periodStart=2025", headers={"content-type": "text/plain"}), 415
    )


def _table(directory: Path, versions: list[tuple[str, int, str]]) -> None:
    pop = directory / "population"
    pop.mkdir(parents=True, exist_ok=True)
    (pop / "versions.json").write_text(
        json.dumps(
            {
                "versions": [
                    {"id": vid, "year": year, "source": f"test {vid}", "file": f"{vid}.csv"}
                    for vid, year, _ in versions
                ]
            }
        )
    )
    for vid, _, body in versions:
        (pop / f"{vid}.csv").write_text("area,target,sex,age_band,count\n" + body)


@pytest.fixture
def with_population(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    directory = tmp_path / "measures"
    shutil.copytree(Path(__file__).parents[2] / "measures", directory)
    _table(
        directory,
        [
            ("v2024", 2024, f"{PKM01_KELURAHAN},hiv-at-risk,female,35-39,50\n"),
            (
                "v2025",
                2025,
                f"{PKM01_KELURAHAN},hiv-at-risk,female,35-39,40\n"
                f"{PKM01_KELURAHAN},hiv-at-risk,male,35-39,30\n"
                f"7472011012,hiv-at-risk,female,35-39,20\n"  # PKM01 too
                f"{PKM03_KELURAHAN},hiv-at-risk,female,0-4,10\n"
                f"{PKM03_KELURAHAN},residents,female,0-4,999\n",
            ),
        ],
    )
    app = create_app(Settings(database_url=db_url, measures_dir=directory), run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        for i in (1, 2):
            _put(c, _patient(f"a{i}"))
            _put(c, _hiv_test(f"hiv-a{i}", f"a{i}", "2025-03-01"))
        yield c
    app.state.database.engine.dispose()


def test_projected_denominators_come_from_the_population_table(
    with_population: TestClient,
) -> None:
    report = with_population.get(HIV, params=YEAR).json()
    assert report["extension"][0]["valueString"] == "v2025 (test v2025)"
    group = report["group"][0]
    assert _count(group, "denominator") == 100
    assert _count(group, "numerator") == 2
    assert group["measureScore"]["value"] == 0.02
    assert _strata(group, "puskesmas")["PKM01"]["denominator"] == 90
    assert _strata(group, "kelurahan")[PKM01_KELURAHAN]["denominator"] == 70
    assert _strata(group, "sex")["female"]["denominator"] == 70
    assert _strata(group, "age-group")["35-39"]["denominator"] == 90
    older = with_population.get(HIV, params={"periodStart": "2024"}).json()
    assert older["extension"][0]["valueString"] == "v2024 (test v2024)"
    assert _count(older["group"][0], "denominator") == 50
    one = with_population.get(HIV, params={**YEAR, "organization": "PKM03"}).json()
    assert _count(one["group"][0], "denominator") == 10
    # no table for imm-01's target: no denominator, no score
    imm = with_population.get("/fhir/Measure/imm-01/$evaluate-measure", params=YEAR).json()
    assert _count(imm["group"][0], "denominator") is None
    assert "extension" not in imm


def test_data_requirements(client: TestClient) -> None:
    answer = client.get("/fhir/Measure/spm-08/$data-requirements")
    assert answer.status_code == 200, answer.text
    library = answer.json()
    assert library["resourceType"] == "Library"
    types = {d["type"] for d in library["dataRequirement"]}
    assert types == {"Person", "Patient", "Encounter", "Condition", "Observation"}
    assert any(a["resource"].endswith("/measure_observation") for a in library["relatedArtifact"])
    _outcome(client.get("/fhir/Measure/nope/$data-requirements"), 404)


def test_one_facility_for_facility_indicators(client: TestClient) -> None:
    for pid, org, code in (("x1", "pkm01", "PKM01"), ("x2", "pkm03", "PKM03")):
        _put(
            client,
            {
                "resourceType": "Organization",
                "id": f"org-{org}",
                "identifier": [
                    {"system": "https://fhirhub.baubaukota.go.id/sid/facility", "value": code}
                ],
            },
        )
        _put(client, _patient(pid))
        _put(
            client,
            {
                "resourceType": "Encounter",
                "id": f"e-{pid}",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "subject": {"reference": f"Patient/{pid}"},
                "period": {"start": "2025-02-03T08:00:00+08:00"},
                "reasonCode": [
                    {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "J06.9"}]}
                ],
                "serviceProvider": {"reference": f"Organization/org-{org}"},
            },
        )
    dq = client.get(
        "/fhir/Measure/dq-01/$evaluate-measure",
        params={"periodStart": "2025-02", "organization": "Organization/org-pkm03"},
    ).json()
    group = dq["group"][0]
    assert (_count(group, "numerator"), _count(group, "denominator")) == (1, 5)  # Feb: 5 weeks
    assert set(_strata(group, "puskesmas")) == {"PKM03"}
    morb = client.get("/fhir/Measure/morb-01/$evaluate-measure", params={"periodStart": "2025"})
    strata = morb.json()["group"][0]["stratifier"][0]["stratum"]
    assert [[c["value"]["text"] for c in s["component"]] for s in strata] == [
        ["PKM01", "J06"],
        ["PKM03", "J06"],
    ]


def test_reports_kept_are_searchable_by_measure_and_period(client: TestClient, db_url: str) -> None:
    """A MeasureReport is an ordinary resource: ``POST /fhir/MeasureReport`` stores one as
    evaluated, and the reports the monthly job keeps (``stored.run``) are found by measure and
    period like any other."""
    from datetime import date

    from fhirhub.services.measures import stored
    from fhirhub.storage.engine import make_engine

    measures = Path(__file__).parents[2] / "measures"

    answer = client.get(HIV, params=YEAR)
    assert answer.status_code == 200, answer.text
    created = client.post(
        "/fhir/MeasureReport",
        json=answer.json(),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert created.status_code == 201, created.text
    engine = make_engine(db_url)
    try:
        months = [stored.last_month(date(2025, m, 1)) for m in (3, 4)]  # February, March
        for period in months:
            assert stored.run(engine, measures, period, keep_alerts=False)["reports"] == 22
    finally:
        engine.dispose()
    url = "https://fhirhub.baubaukota.go.id/Measure/spm-12"

    def found(**params: str) -> list[str]:
        bundle = client.get("/fhir/MeasureReport", params={"_count": "100", **params}).json()
        assert bundle["resourceType"] == "Bundle", bundle
        return sorted(
            f"{e['resource']['period']['start']}..{e['resource']['period']['end']}"
            for e in bundle.get("entry", [])
        )

    assert found(measure=url) == [
        "2025-01-01..2025-12-31",
        "2025-02-01..2025-02-28",
        "2025-03-01..2025-03-31",
    ]
    assert found(measure=url, period="2025-03") == ["2025-03-01..2025-03-31"]
    assert found(measure=url, period="sa2025-01-31") == [  # starts after January
        "2025-02-01..2025-02-28",
        "2025-03-01..2025-03-31",
    ]
    assert len(found(period="2025-02")) == 22  # every indicator of February
