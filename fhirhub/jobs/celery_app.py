"""The Celery application of the workers: ``celery -A fhirhub.jobs.celery_app worker``.

Broker from ``FHIRHUB_BROKER_URL`` (``redis://…`` or ``amqp://…``). Without one the tasks still
run, in process (``fhirhub.ingest.queue.Dispatcher``).
"""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init

from fhirhub.config import get_settings
from fhirhub.ingest.queue import TASK_SWEEP, celery_config

_settings = get_settings()
celery_app = Celery("fhirhub", include=["fhirhub.jobs.tasks", "fhirhub.jobs.view_tasks"])
celery_app.conf.update(
    celery_config(_settings.broker_url, _settings.broker_visibility_timeout, _settings.broker_queue)
)
celery_app.conf.beat_schedule = {
    "sweep-inbox": {"task": TASK_SWEEP, "schedule": _settings.ingest_sweep_interval},
}
if _settings.views_refresh_interval:  # the name is fhirhub.jobs.view_tasks.TASK_REFRESH_VIEWS
    celery_app.conf.beat_schedule["refresh-views"] = {
        "task": "fhirhub.views.refresh",
        "schedule": _settings.views_refresh_interval,
    }
app = celery_app  # what ``celery -A fhirhub.jobs.celery_app`` looks for


@worker_process_init.connect
def _fresh_connections(**_kwargs: object) -> None:
    # A forked pool process must not share the parent's database connections.
    from fhirhub.jobs import tasks

    tasks.reset()
