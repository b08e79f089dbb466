"""The task that keeps materialised views current (``fhirhub views materialize`` as a job).

Idempotent: a refresh reads what changed since each view's watermark; two at once for one view
wait for each other (an advisory lock on PostgreSQL). Scheduled by beat every
``FHIRHUB_VIEWS_REFRESH_INTERVAL`` seconds when that is set.
"""

from __future__ import annotations

import json

from fhirhub.config import get_settings
from fhirhub.jobs.celery_app import celery_app
from fhirhub.storage.engine import make_engine

TASK_REFRESH_VIEWS = "fhirhub.views.refresh"


@celery_app.task(name=TASK_REFRESH_VIEWS, autoretry_for=(ConnectionError,), max_retries=3)
def refresh_views() -> dict[str, int]:
    """Refresh every view of the catalogue (``FHIRHUB_VIEWS_DIR``): table -> rows."""
    from fhirhub.views.materialize import refresh

    settings = get_settings()
    engine = make_engine(settings.database_url, pool_size=1)
    done: dict[str, int] = {}
    try:
        for path in sorted(settings.views_dir.glob("*.json")):
            result = refresh(engine, json.loads(path.read_text(encoding="utf-8")))
            done[result.table] = result.rows
    finally:
        engine.dispose()
    return done
