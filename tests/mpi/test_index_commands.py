"""``fhirhub mpi rebuild | stats | export`` (issue 11, item 4)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
from mpi_invariants import check
from sqlalchemy import text
from typer.testing import CliRunner

from fhirhub.cli import app
from fhirhub.config import get_settings
from fhirhub.model.json import loads
from fhirhub.mpi import store
from fhirhub.mpi.features import extract
from fhirhub.services.load import load_bundles
from fhirhub.services.patient_index import placing_order
from fhirhub.storage.engine import make_engine
from fhirhub.synth import demo_bundles

runner = CliRunner()


@pytest.fixture
def city(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A small synthetic city stored with the index OFF: no record has a Person yet."""
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", db_url)
    monkeypatch.setenv("FHIRHUB_PATIENT_INDEX", "off")
    get_settings.cache_clear()
    engine = make_engine(db_url)
    try:
        load_bundles(engine, demo_bundles(persons=40, seed=5))
    finally:
        engine.dispose()
    monkeypatch.setenv("FHIRHUB_PATIENT_INDEX", "on")
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def test_rebuild_links_every_record_then_stats_and_export_tell_it(city: str):
    result = runner.invoke(app, ["mpi", "rebuild", "--batch", "25"])
    assert result.exit_code == 0, result.output
    assert "records placed" in result.output
    engine = make_engine(city)
    try:
        with engine.connect() as conn:
            persons = check(conn)
            records = sum(len(p) for p in persons.values())
            assert 0 < len(persons) < records  # some citizens have records at two sources
            assert store.get_state(conn, "model") is not None  # estimated from these records
            assert store.get_state(conn, "rebuild") is None
    finally:
        engine.dispose()
    stats = runner.invoke(app, ["mpi", "stats"])
    assert stats.exit_code == 0, stats.output
    assert f"persons: {len(persons)}" in stats.output
    assert f"records: {records}" in stats.output
    out = runner.invoke(app, ["mpi", "export", "--format", "csv"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == records
    assert {r["person_id"] for r in rows} == set(persons)
    again = runner.invoke(app, ["mpi", "rebuild", "--keep-model"])
    assert again.exit_code == 0, again.output
    assert "0 moved" in again.output  # the same model places every record where it is


def test_an_interrupted_rebuild_resumes(city: str):
    engine = make_engine(city)
    try:
        with engine.begin() as conn:
            bodies = store.all_patient_bodies(conn)  # parsed on PostgreSQL, text on SQLite
            features = {p: extract(b if isinstance(b, dict) else loads(b)) for p, b in bodies}
            first = placing_order(features)[:10]  # as a rebuild places them
            ids = [pid for _, pid in first]
            store.set_state(conn, "rebuild", json.dumps({"after": list(first[-1])}))
        result = runner.invoke(app, ["mpi", "rebuild"])
        assert result.exit_code == 0, result.output
        assert "(resumed)" in result.output
        with engine.connect() as conn:
            # the records before the mark were never placed: the run resumed after them
            placed = store.memberships(conn, ids)
            assert not placed
    finally:
        engine.dispose()


def test_export_refuses_an_unknown_format(city: str):
    result = runner.invoke(app, ["mpi", "export", "--format", "xml"])
    assert result.exit_code != 0
    assert "not supported" in result.output


def test_a_rebuild_copies_its_blocking_keys_on_postgresql(
    city: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(store, "COPY_FROM", 1)  # the bulk path a large rebuild takes
    result = runner.invoke(app, ["mpi", "rebuild"])
    assert result.exit_code == 0, result.output
    engine = make_engine(city)
    try:
        with engine.connect() as conn:
            check(conn)
            keys = conn.execute(text("SELECT count(*) FROM mpi_blocks")).scalar_one()
            assert keys > store.COPY_FROM
    finally:
        engine.dispose()
