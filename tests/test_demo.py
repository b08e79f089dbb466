"""The README's run command loads a small synthetic city: every Bundle of it must be stored, the
Puskesmas ones through the inbox and their adapter."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from fhirhub.cli import load_demo
from fhirhub.config import Settings
from tests.conftest import SOURCES_ONLY

BY_TYPE = f"SELECT res_type, count(*) FROM resources WHERE {SOURCES_ONLY} GROUP BY res_type"

ROOT = Path(__file__).resolve().parents[1]


def count(engine: Engine, sql: str) -> dict[str, int]:
    with engine.connect() as conn:
        return {k: int(v) for k, v in conn.execute(text(sql)).all()}


def test_demo_city_loads_without_rejections(engine: Engine, db_url: str) -> None:
    settings = Settings(
        database_url=db_url,
        mappings_dir=ROOT / "mappings",
        terminology_dir=ROOT / "terminology",
        broker_url=None,
    )
    report = load_demo(engine, settings, persons=40, seed=3)
    assert report.rejected == 0, report.problems[:5]
    assert report.stored > 100
    kinds = count(engine, BY_TYPE)
    assert kinds["Organization"] >= 19  # Dinkes, 17 Puskesmas, the RSUD
    assert kinds["Patient"] >= 40
    inbox = count(engine, "SELECT status, count(*) FROM inbox_messages GROUP BY status")
    assert set(inbox) == {"processed"} and kinds["Provenance"] == inbox["processed"]
    # The patient index placed every record: fewer Persons than Patients (citizens seen at
    # two Puskesmas). (The 361-person demo of `dev.py run` also leaves open review Tasks.)
    records = count(engine, "SELECT 'n', count(*) FROM mpi_records")["n"]
    assert records == kinds["Patient"]
    everyone = count(
        engine, "SELECT res_type, count(*) FROM resources WHERE NOT deleted GROUP BY res_type"
    )
    assert 0 < everyone["Person"] < kinds["Patient"]
    again = load_demo(engine, settings, persons=40, seed=3)  # a restart loads it again
    assert again.rejected == 0 and again.stored == 0 and again.unchanged == report.stored
    assert (
        count(
            engine,
            BY_TYPE,
        )
        == kinds
    )
