"""``fhirhub pull khanza`` and the beat entry that runs it."""

from __future__ import annotations

import pytest
from khanza_city import KhanzaRows, insert
from sqlalchemy import text
from typer.testing import CliRunner

from fhirhub import cli
from fhirhub.config import Settings, get_settings
from fhirhub.jobs.celery_app import beat_schedule
from fhirhub.storage.engine import make_engine

runner = CliRunner()


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cli.console, "width", 1000)
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", db_url)
    monkeypatch.delenv("FHIRHUB_KHANZA_URL", raising=False)
    monkeypatch.delenv("FHIRHUB_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def encounters(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM resources WHERE res_type = 'Encounter'")
        ).scalar_one()
    engine.dispose()
    return int(n)


def test_pull_khanza_reads_new_visits_with_a_progress_bar_then_nothing(
    env: pytest.MonkeyPatch, db_url: str, khanza_url: str, city: KhanzaRows
):
    insert(khanza_url, city)
    env.setenv("FHIRHUB_KHANZA_URL", khanza_url)
    get_settings.cache_clear()
    n = len(city.visits)
    first = runner.invoke(cli.app, ["pull", "khanza", "--batch", "25"])
    assert first.exit_code == 0, first.output
    assert f"{n}/{n}" in first.output  # the bar's count
    assert f"read {n} visits: {n} new, 0 already kept ({n} processed)" in first.output
    assert encounters(db_url) == n
    again = runner.invoke(cli.app, ["pull", "khanza"])
    assert again.exit_code == 0 and "visits: 0 new" in again.output  # the lookback re-reads
    since = runner.invoke(cli.app, ["pull", "khanza", "--since", city.visits[-1]["tgl_registrasi"]])
    assert since.exit_code == 0 and "0 new, 1 already kept" in since.output
    assert encounters(db_url) == n


def test_pull_khanza_without_a_database_or_with_a_bad_date(env: pytest.MonkeyPatch, db_url: str):
    result = runner.invoke(cli.app, ["pull", "khanza"])
    assert result.exit_code == 2
    assert "FHIRHUB_KHANZA_URL is not set" in result.output
    env.setenv("FHIRHUB_KHANZA_URL", "mysql+pymysql://root@127.0.0.1:1/sik")
    get_settings.cache_clear()
    bad = runner.invoke(cli.app, ["pull", "khanza", "--since", "05/03/2024"])
    assert bad.exit_code == 2 and "is not a date" in bad.output
    down = runner.invoke(cli.app, ["pull", "khanza"])
    assert down.exit_code == 1
    assert "cannot read FHIRHUB_KHANZA_URL (khanza: OperationalError" in down.output


def test_beat_pulls_khanza_only_when_its_database_is_set():
    assert not any(name.startswith("pull-") for name in beat_schedule(Settings()))
    schedule = beat_schedule(
        Settings(khanza_url="mysql+pymysql://fhirhub:secret@khanza/sik", khanza_pull_interval=300)
    )
    assert schedule["pull-khanza"] == {
        "task": "fhirhub.ingest.pull",
        "args": ["khanza"],
        "schedule": 300.0,
        "options": {"expires": 300.0},
    }


def test_the_beat_task_pulls_new_visits_and_waits_out_a_khanza_that_is_down(
    env: pytest.MonkeyPatch, db_url: str, khanza_url: str, city: KhanzaRows
):
    from fhirhub.jobs import tasks

    insert(khanza_url, city)
    env.setenv("FHIRHUB_KHANZA_URL", khanza_url)
    get_settings.cache_clear()
    tasks.reset()
    try:
        assert tasks.pull("khanza") == len(city.visits)
        assert tasks.pull("khanza") == 0
        assert encounters(db_url) == len(city.visits)
        env.setenv("FHIRHUB_KHANZA_URL", "mysql+pymysql://root@127.0.0.1:1/sik")
        get_settings.cache_clear()
        assert tasks.pull("khanza") == 0  # logged; the next beat tries again
        env.delenv("FHIRHUB_KHANZA_URL")
        get_settings.cache_clear()
        assert tasks.pull("khanza") == 0
    finally:
        tasks.service().dispatcher.close()
        tasks.service().engine.dispose()
        tasks.reset()
