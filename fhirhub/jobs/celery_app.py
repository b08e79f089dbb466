"""The Celery application of the workers: ``celery -A fhirhub.jobs.celery_app worker``.

Broker from ``FHIRHUB_BROKER_URL`` (``redis://…`` or ``amqp://…``). Without one the tasks still
run, in process (``fhirhub.ingest.queue.Dispatcher``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_process_init

from fhirhub.config import Settings, get_settings
from fhirhub.ingest.pull import TASK_PULL, scheduled
from fhirhub.ingest.queue import TASK_SWEEP, celery_config

_settings = get_settings()
celery_app = Celery("fhirhub", include=["fhirhub.jobs.tasks", "fhirhub.jobs.view_tasks"])
celery_app.conf.update(
    celery_config(_settings.broker_url, _settings.broker_visibility_timeout, _settings.broker_queue)
)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic jobs: the inbox sweep, and a pull from every source database that is set
    (``FHIRHUB_KHANZA_URL``: ``fhirhub pull khanza`` every ``FHIRHUB_KHANZA_PULL_INTERVAL``)."""
    schedule: dict[str, dict[str, Any]] = {
        "sweep-inbox": {"task": TASK_SWEEP, "schedule": settings.ingest_sweep_interval},
        # at 03:00 (the beat's time zone is WITA): last month's reports on the 1st, the
        # surveillance alerts once an epi week (Sunday to Saturday) has ended
        "measures-monthly": {
            "task": "fhirhub.measures.monthly",
            "schedule": crontab(minute=0, hour=3, day_of_month=1),
        },
        "surveillance-weekly": {
            "task": "fhirhub.measures.surveillance",
            "schedule": crontab(minute=0, hour=3, day_of_week="sunday"),
        },
    }
    if settings.views_refresh_interval:  # the name is fhirhub.jobs.view_tasks.TASK_REFRESH_VIEWS
        schedule["refresh-views"] = {
            "task": "fhirhub.views.refresh",
            "schedule": settings.views_refresh_interval,
        }
    for name, interval in scheduled(settings).items():
        schedule[f"pull-{name}"] = {
            "task": TASK_PULL,
            "args": [name],
            "schedule": interval,
            "options": {"expires": interval},  # a pull not started in time waits for the next
        }
    return schedule


celery_app.conf.beat_schedule = beat_schedule(_settings)
app = celery_app  # what ``celery -A fhirhub.jobs.celery_app`` looks for


@worker_process_init.connect
def _fresh_connections(**_kwargs: object) -> None:
    # A forked pool process must not share the parent's database connections.
    from fhirhub.jobs import tasks

    tasks.reset()
