"""The command line: load, migrate, --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from fhirhub import cli
from fhirhub.cli import app
from fhirhub.config import get_settings
from fhirhub.storage.engine import make_engine

runner = CliRunner()
NIK = "https://fhir.kemkes.go.id/id/nik"


@pytest.fixture
def use_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(cli.console, "width", 1000)  # no wrapping, whatever the terminal
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def _count(url: str, res_type: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM resources WHERE res_type = :t AND NOT deleted"),
            {"t": res_type},
        ).scalar_one()
    engine.dispose()
    return int(n)


def test_help_everywhere() -> None:
    for args in ([], ["serve"], ["migrate"], ["load"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_load_ndjson_reports_stored_and_rejected(use_db: str, tmp_path: Path) -> None:
    lines = [
        {"resourceType": "Patient", "identifier": [{"system": NIK, "value": f"74720100{i:08}"}]}
        for i in range(5)
    ]
    lines.append({"resourceType": "Patient", "gender": 42})  # line 6: invalid
    lines.append({"resourceType": "Organization", "id": "pkm-wolio", "name": "PKM Wolio"})
    path = tmp_path / "patients.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")
    result = runner.invoke(app, ["load", str(path)])
    assert result.exit_code == 1  # something was rejected
    output = " ".join(result.output.split())  # the console wraps long lines
    assert "stored 6, unchanged 0, rejected 1" in output
    assert f"{path}:6: 400 value at Patient.gender" in output
    assert _count(use_db, "Patient") == 5
    again = runner.invoke(app, ["load", str(path)])
    assert "unchanged 1, rejected 1" in again.output  # the Organization by id: no new version


def test_load_transaction_bundle(use_db: str, tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "berat badan"},
                    "subject": {"reference": "urn:uuid:1"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = runner.invoke(app, ["load", str(path)])
    assert result.exit_code == 0, result.output
    assert "stored 2, unchanged 0, rejected 0" in result.output
    assert _count(use_db, "Observation") == 1


def test_load_sends_a_puskesmas_bundle_through_the_inbox(use_db: str, tmp_path: Path) -> None:
    from fhirhub.synth import demo_bundles

    reference, *clinics = demo_bundles(persons=40, seed=5)
    (tmp_path / "0-reference.json").write_text(json.dumps(reference))
    (tmp_path / "1-clinic.json").write_text(json.dumps(clinics[0]))
    result = runner.invoke(app, ["load", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert _count(use_db, "Provenance") == 1  # one inbox message, stamped
    engine = make_engine(use_db)
    with engine.connect() as conn:
        inbox = conn.execute(text("SELECT status, resources FROM inbox_messages")).all()
    engine.dispose()
    assert [s for s, _ in inbox] == ["processed"]
    patients = _count(use_db, "Patient")
    again = runner.invoke(app, ["load", str(tmp_path)])
    assert again.exit_code == 0, again.output
    first = result.output.split("stored ")[-1].split(",")[0]  # "stored N, unchanged 0, ..."
    assert f"stored 0, unchanged {first}, rejected 0" in again.output
    assert _count(use_db, "Patient") == patients and _count(use_db, "Provenance") == 1
