"""The README's run command loads a small synthetic city: every bundle of it must be stored."""

from __future__ import annotations

from sqlalchemy import Engine, text

from fhirhub.services.load import load_bundles
from fhirhub.synth import demo_bundles


def test_demo_city_loads_without_rejections(engine: Engine) -> None:
    report = load_bundles(engine, demo_bundles(persons=40, seed=3))
    assert report.rejected == 0, report.problems[:5]
    assert report.stored > 100
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(text("SELECT res_type, count(*) FROM resources GROUP BY res_type")).all()
        )
    assert kinds["Organization"] >= 19  # Dinkes, 17 Puskesmas, the RSUD
    assert kinds["Patient"] >= 40
    again = load_bundles(engine, demo_bundles(persons=40, seed=3))  # a restart loads it again
    assert again.rejected == 0
    with engine.connect() as conn:
        patients = conn.execute(
            text("SELECT count(*) FROM resources WHERE res_type = 'Patient'")
        ).scalar_one()
    assert patients == kinds["Patient"]  # conditional creates: no duplicates
