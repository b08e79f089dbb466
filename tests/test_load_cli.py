"""``fhirhub load`` on folders as a user meets them (issue 9, items 3 and 10): the progress
total, each rejection's diagnostics, the folders of ``fhirhub synth``, and no database left
behind by a load that stored nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from fhirhub import cli
from fhirhub.cli import SHOWN_REJECTIONS, app
from fhirhub.config import get_settings
from fhirhub.services.load import load_paths
from fhirhub.services.load_plan import plan
from fhirhub.storage.engine import make_engine
from tests.conftest import SOURCES_ONLY

runner = CliRunner()
NIK = "https://fhir.kemkes.go.id/id/nik"


@pytest.fixture
def use_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(cli.console, "width", 1000)  # no wrapping, whatever the terminal
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def _count(url: str, res_type: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM resources WHERE res_type = :t AND NOT deleted "
                f"AND {SOURCES_ONLY}"
            ),
            {"t": res_type},
        ).scalar_one()
    engine.dispose()
    return int(n)


def _patient(i: int) -> dict[str, object]:
    return {"resourceType": "Patient", "identifier": [{"system": NIK, "value": f"74720100{i:08}"}]}


def _synth_like(root: Path) -> Path:
    """A folder shaped like ``fhirhub synth --out``: a few FHIR files among the files of the
    sources fhirhub has no adapter for yet."""
    from fhirhub.synth import demo_bundles

    reference, clinic, *_ = demo_bundles(persons=20, seed=3)
    (root / "reference").mkdir(parents=True)
    (root / "reference" / "city.json").write_text(json.dumps(reference))
    (root / "puskesmas" / "PKM01").mkdir(parents=True)
    (root / "puskesmas" / "PKM01" / "bundle-0000.json").write_text(json.dumps(clinic))
    (root / "satusehat").mkdir()
    (root / "satusehat" / "Organization.ndjson").write_text(
        json.dumps({"resourceType": "Organization", "id": "10085100", "name": "PKM"}) + "\n"
    )
    (root / "satusehat" / "Patient.jsonl").write_text(json.dumps(_patient(1)) + "\n")
    (root / "bpjs" / "vclaim").mkdir(parents=True)
    (root / "bpjs" / "vclaim" / "peserta.ndjson").write_text(
        json.dumps({"metaData": {"code": "200"}, "response": {}}) + "\n"
    )
    (root / "bpjs" / "pcare").mkdir(parents=True)
    (root / "bpjs" / "pcare" / "kunjungan.ndjson").write_text(
        json.dumps({"noKartu": "0000001234664", "kdDiag1": "J06.9"}) + "\n"
    )
    (root / "rsud" / "hl7v2").mkdir(parents=True)
    (root / "rsud" / "hl7v2" / "2025-05.hl7").write_text("MSH|^~\\&|KHANZA\r")
    (root / "rsud" / "khanza").mkdir(parents=True)
    (root / "rsud" / "khanza" / "pasien.csv").write_text("no_rkm_medis,nm_pasien\n")
    (root / "truth").mkdir()
    (root / "truth" / "persons.csv").write_text("person_id\n")
    (root / "truth" / "indicators.json").write_text("{}")
    (root / "manifest.json").write_text(json.dumps({"generator": "fhirhub.synth", "seed": 3}))
    (root / "stats.json").write_text(json.dumps({"persons": 20}))
    return root


def test_the_progress_total_counts_entries_not_files(tmp_path: Path, engine) -> None:
    root = _synth_like(tmp_path / "city")
    found = plan([root])
    bundles = [json.loads(p.read_text()) for p in found.files if p.suffix == ".json"]
    entries = sum(len(b["entry"]) for b in bundles)
    assert found.units == entries + 2  # and one line in each NDJSON file
    assert found.units > len(found.files)
    advanced: list[int] = []
    load_paths(engine, found.files, progress=advanced.append)
    assert sum(advanced) == found.units  # the bar ends at its total, not past it


def test_each_rejection_keeps_its_diagnostics_and_the_rest_are_counted(
    use_db: str, tmp_path: Path
) -> None:
    bad = SHOWN_REJECTIONS + 5
    lines = [{"resourceType": "Patient", "gender": 42} for _ in range(bad)] + [_patient(1)]
    path = tmp_path / "patients.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    result = runner.invoke(app, ["load", str(path)])
    assert result.exit_code == 1
    shown = re.findall(
        rf"rejected {re.escape(str(path))}:(\d+): 400 value at Patient\.gender: \S", result.output
    )
    assert [int(n) for n in shown] == list(range(1, SHOWN_REJECTIONS + 1))
    assert "and 5 more rejected" in result.output
    assert f"stored 1, unchanged 0, rejected {bad}" in result.output


def test_a_rejected_puskesmas_bundle_keeps_its_diagnostics(use_db: str, tmp_path: Path) -> None:
    from fhirhub.synth import demo_bundles

    reference, clinic, *_ = demo_bundles(persons=20, seed=3)
    (tmp_path / "0-reference.json").write_text(json.dumps(reference))
    patient = next(e for e in clinic["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["resource"]["birthDate"] = "not a date"
    (tmp_path / "1-clinic.json").write_text(json.dumps(clinic))
    result = runner.invoke(app, ["load", str(tmp_path)])
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if x.startswith("rejected "))
    assert "(inbox message 1)" in line
    assert re.search(r": 4\d\d [a-z-]+( at [^:]+)?: \S", line), line  # the diagnostics follow


def test_a_synth_folder_loads_what_fhirhub_takes_and_names_what_it_skipped(
    use_db: str, tmp_path: Path
) -> None:
    root = _synth_like(tmp_path / "city")
    result = runner.invoke(app, ["load", str(root)])
    assert result.exit_code == 0, result.output  # nothing it tried was rejected
    out = result.output
    assert f"skipped {root / 'bpjs' / 'vclaim'}: 1 file, BPJS" in out
    assert f"skipped {root / 'bpjs' / 'pcare'}: 1 file, BPJS" in out
    assert f"skipped {root / 'rsud' / 'hl7v2'}: 1 file, HL7 v2" in out
    assert f"skipped {root / 'rsud' / 'khanza'}: 1 file, SIMRS Khanza" in out
    assert f"skipped {root / 'truth'}: 2 files, fhirhub synth's ground truth" in out
    assert f"skipped {root}: 1 file, fhirhub synth's manifest" in out
    assert f"skipped {root}: 1 file, fhirhub synth's figures" in out
    assert "rejected 0" in out
    assert _count(use_db, "Provenance") == 1  # the Puskesmas Bundle, through the inbox
    assert _count(use_db, "Patient") > 1  # the .jsonl in a folder too
    assert _count(use_db, "Organization") > 1


def test_a_folder_with_nothing_loadable_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "city"
    (root / "rsud").mkdir(parents=True)
    (root / "rsud" / "a.hl7").write_text("MSH|^~\\&|KHANZA\r")
    (root / "notes.txt").write_text("hello")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FHIRHUB_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["load", str(root)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert f"nothing to load in {root}" in result.stderr
    assert "HL7 v2" in result.stderr
    assert not (tmp_path / "fhirhub.sqlite3").exists()  # no database made for nothing


def test_a_load_that_stores_nothing_leaves_no_database_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_text(json.dumps({"resourceType": "Patient", "gender": 42}) + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FHIRHUB_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        failed = runner.invoke(app, ["load", str(path)])
        assert failed.exit_code == 1
        assert not list(tmp_path.glob("fhirhub.sqlite3*"))
        path.write_text(json.dumps(_patient(1)) + "\n")
        stored = runner.invoke(app, ["load", str(path)])
        assert stored.exit_code == 0, stored.output
        assert (tmp_path / "fhirhub.sqlite3").exists()  # a load that stored something keeps it
        path.write_text(json.dumps({"resourceType": "Patient", "gender": 42}) + "\n")
        again = runner.invoke(app, ["load", str(path)])
        assert again.exit_code == 1
        assert (tmp_path / "fhirhub.sqlite3").exists()  # an existing database is never removed
    finally:
        get_settings.cache_clear()


def test_a_file_that_is_not_json_is_rejected_with_the_parsers_explanation(
    use_db: str, tmp_path: Path
) -> None:
    (tmp_path / "broken.json").write_text('{"resourceType": "Bundle", "type": ')
    result = runner.invoke(app, ["load", str(tmp_path)])
    assert result.exit_code == 1
    assert f"rejected {tmp_path / 'broken.json'}: 400 structure: The body is not valid JSON" in (
        result.output
    )
