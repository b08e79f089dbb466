"""The Celery task that refreshes the catalogue's materialised views, run eagerly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from fhirhub.api.deps import Database
from fhirhub.config import get_settings


@pytest.fixture
def catalogue(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    view = {
        "resourceType": "ViewDefinition",
        "name": "task_view",
        "resource": "Patient",
        "select": [{"column": [{"name": "id", "path": "id"}]}],
    }
    (tmp_path / "task-view.json").write_text(json.dumps(view))
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", db_url)
    monkeypatch.setenv("FHIRHUB_VIEWS_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS view_task_view"))


def test_the_task_brings_every_catalogued_view_current(engine: Engine, catalogue: Path) -> None:
    from fhirhub.jobs.view_tasks import refresh_views

    Database(engine).transact(
        lambda w: w.update("Patient", "a", {"resourceType": "Patient", "id": "a"})
    )
    assert refresh_views.apply().get() == {"view_task_view": 1}
    Database(engine).transact(
        lambda w: w.update("Patient", "b", {"resourceType": "Patient", "id": "b"})
    )
    assert refresh_views.apply().get() == {"view_task_view": 2}
