"""``fhirhub report``: a period's indicators as CSV, XLSX (one sheet per indicator) and a DHIS2
dataValueSets payload, the same numbers as ``$evaluate-measure``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine
from typer.testing import CliRunner

from fhirhub.cli import app
from fhirhub.config import get_settings
from fhirhub.services.load import load_bundles

ADMIN = "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode"
runner = CliRunner()


@pytest.fixture
def stored(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Two women of PKM01's area, one tested for HIV in 2025."""
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", db_url)
    get_settings.cache_clear()
    entries = []
    for pid in ("w1", "w2"):
        patient = {
            "resourceType": "Patient",
            "id": pid,
            "gender": "female",
            "birthDate": "1990-05-01",
            "address": [
                {
                    "extension": [
                        {"url": ADMIN, "extension": [{"url": "village", "valueCode": "7472011007"}]}
                    ]
                }
            ],
        }
        entries.append({"resource": patient, "request": {"method": "PUT", "url": f"Patient/{pid}"}})
    test = {
        "resourceType": "Observation",
        "id": "t1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1"}]},
        "subject": {"reference": "Patient/w1"},
        "effectiveDateTime": "2025-05-05",
    }
    entries.append({"resource": test, "request": {"method": "PUT", "url": "Observation/t1"}})
    report = load_bundles(
        engine, [{"resourceType": "Bundle", "type": "transaction", "entry": entries}]
    )
    assert report.rejected == 0, report.problems
    yield db_url
    get_settings.cache_clear()


def test_csv(stored: str, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    result = runner.invoke(
        app, ["report", "--period", "2025", "--measure", "spm-12", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.read_text().splitlines()))
    total = next(r for r in rows if r["stratifier"] == "")
    assert (total["measure"], total["initial-population"], total["numerator"]) == (
        "spm-12",
        "2",
        "1",
    )
    assert {(r["stratifier"], r["stratum"]) for r in rows} >= {
        ("puskesmas", "PKM01"),
        ("sex", "female"),
    }


def test_xlsx_has_a_sheet_per_indicator(stored: str, tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    result = runner.invoke(
        app, ["report", "--period", "2025", "--format", "xlsx", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    book = load_workbook(out, read_only=True)
    try:
        assert len(book.sheetnames) == 22 and "spm-12" in book.sheetnames
        header, total = list(book["spm-12"].iter_rows(values_only=True))[:2]
    finally:
        book.close()
    row = dict(zip(header, total, strict=False))  # trailing empty cells are not kept
    assert (row["initial-population"], row["numerator"]) == (2, 1)


def test_dhis2_data_value_set(stored: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "report",
            "--period",
            "2025",
            "--measure",
            "spm-12",
            "--format",
            "dhis2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text())
    assert body["idScheme"] == "CODE"
    values = {
        (v["dataElement"], v["orgUnit"], v["categoryOptionCombo"]): v["value"]
        for v in body["dataValues"]
    }
    assert all(v["period"] == "2025" for v in body["dataValues"])
    assert values[("SPM12_NUM", "7472", "default")] == "1"
    assert values[("SPM12_IP", "PKM01", "default")] == "2"
    assert values[("SPM12_NUM", "7472", "P")] == "1"


def test_bad_period_is_one_line(stored: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--period", "2025-13", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 1
    assert "periodStart" in result.output


def _dengue(eid: str, day: str) -> dict[str, object]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/w2"},
        "period": {"start": f"{day}T09:00:00+08:00"},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "A91"}]}],
        "serviceProvider": {"reference": "Organization/org-pkm03"},
    }


def test_surveillance_alerts_become_communications(
    stored: str, engine: Engine, tmp_path: Path
) -> None:
    org = {
        "resourceType": "Organization",
        "id": "org-pkm03",
        "identifier": [
            {"system": "https://fhirhub.baubaukota.go.id/sid/facility", "value": "PKM03"}
        ],
    }
    # three suspected dengue cases in epi week 2025-W07 (9-15 February), none before: an alert
    entries = [{"resource": org, "request": {"method": "PUT", "url": "Organization/org-pkm03"}}]
    for i, day in enumerate(("2025-02-10", "2025-02-11", "2025-02-15")):
        e = _dengue(f"d{i}", day)
        entries.append({"resource": e, "request": {"method": "PUT", "url": f"Encounter/d{i}"}})
    e = _dengue("d9", "2025-03-20")  # alone in its week: no alert
    entries.append({"resource": e, "request": {"method": "PUT", "url": "Encounter/d9"}})
    report = load_bundles(
        engine, [{"resourceType": "Bundle", "type": "transaction", "entry": entries}]
    )
    assert report.rejected == 0, report.problems
    args = ["report", "--period", "2025", "--measure", "surv-02", "--alerts"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    assert "1 surveillance alerts, 1 new or changed" in result.output
    rows = list(csv.DictReader((tmp_path / "s.csv").read_text().splitlines()))
    flagged = [(r["stratum"], r["initial-population"]) for r in rows if r["alert"] == "True"]
    assert flagged == [("PKM03 2025-W07", "3")]
    with engine.connect() as conn:
        from fhirhub.storage.repository import ResourceRepository

        found = ResourceRepository(conn).current("Communication", "alert-surv-02-pkm03-2025-w07")
    assert found is not None and found.content is not None
    comm = json.loads(found.content)
    assert comm["sent"] == "2025-02-15T23:59:59+08:00"
    assert "3 kasus di PKM03" in comm["payload"][0]["contentString"]
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "s2.csv")])
    assert "1 surveillance alerts, 0 new or changed" in again.output


def test_stored_reports_change_only_when_the_numbers_do(
    stored: str, engine: Engine, tmp_path: Path
) -> None:
    args = ["report", "--period", "2025", "--measure", "spm-12", "--measure", "spm-05", "--store"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a.csv")])
    assert first.exit_code == 0, first.output
    assert "2 MeasureReports, 2 new or changed" in first.output
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "b.csv")])
    assert "2 MeasureReports, 0 new or changed" in again.output
    test = {
        "resourceType": "Observation",
        "id": "t2",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1"}]},
        "subject": {"reference": "Patient/w2"},
        "effectiveDateTime": "2025-07-05",
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": test, "request": {"method": "PUT", "url": "Observation/t2"}}],
    }
    assert load_bundles(engine, [bundle]).rejected == 0
    more = runner.invoke(app, [*args, "--out", str(tmp_path / "c.csv")])
    assert "2 MeasureReports, 1 new or changed" in more.output
    from fhirhub.storage.repository import ResourceRepository

    with engine.connect() as conn:
        kept = ResourceRepository(conn).current("MeasureReport", "spm-12-2025-01-01-2025-12-31")
    assert kept is not None and kept.version == 2 and kept.content is not None
    numerator = [
        p["count"]
        for p in json.loads(kept.content)["group"][0]["population"]
        if p["code"]["coding"][0]["code"] == "numerator"
    ]
    assert numerator == [2]
