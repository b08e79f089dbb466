"""Named, idempotent tasks; each takes ids and calls one service function.

``fhirhub.ingest.process_message`` acknowledges late: a worker that dies mid-task leaves the
message on the broker to be delivered again, which is safe because processing is idempotent
(the inbox row's status commits with the data). Retries, with backoff, only on the listed
transient errors. A message another worker has claimed is retried too: once that worker's
lease has run out (it died) the message is claimed again; if it finished, nothing is done.
"""

from __future__ import annotations

import logging
import os

from kombu.exceptions import OperationalError as BrokerOperationalError

from fhirhub.config import get_settings
from fhirhub.ingest import pull as pulls
from fhirhub.ingest.pipeline import TransientError
from fhirhub.ingest.queue import TASK_PROCESS, TASK_SWEEP
from fhirhub.ingest.service import IngestService
from fhirhub.jobs.celery_app import celery_app
from fhirhub.storage.engine import make_engine

TRANSIENT = (TransientError, BrokerOperationalError, ConnectionError)
log = logging.getLogger("fhirhub.jobs")

_service: tuple[int, IngestService] | None = None


def service() -> IngestService:
    """One service (engine and pool) per worker process."""
    global _service
    if _service is None or _service[0] != os.getpid():
        settings = get_settings()
        engine = make_engine(settings.database_url, pool_size=2)
        _service = (os.getpid(), IngestService.from_settings(engine, settings))
    return _service[1]


def reset() -> None:
    global _service
    _service = None


@celery_app.task(
    name=TASK_PROCESS,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
)
def process_message(message_id: int) -> str:
    status = service().pipeline.process(message_id).status
    if status == "processing":  # claimed by a worker that may have died: try after its lease
        raise TransientError("claimed by another worker")
    return status


@celery_app.task(name=TASK_SWEEP, autoretry_for=TRANSIENT, retry_backoff=5, max_retries=3)
def sweep() -> int:
    settings = get_settings()
    return len(service().sweep(settings.ingest_sweep_after))


TASK_MEASURES_MONTHLY = "fhirhub.measures.monthly"
TASK_SURVEILLANCE_WEEKLY = "fhirhub.measures.surveillance"


@celery_app.task(name=TASK_MEASURES_MONTHLY, autoretry_for=TRANSIENT, retry_backoff=60)
def measures_monthly() -> dict[str, int]:
    """Every indicator for the last calendar month (WITA), its MeasureReports kept."""
    from fhirhub.services.measures import stored
    from fhirhub.services.measures.period import today_wita

    params = stored.last_month(today_wita())
    return stored.run(service().engine, get_settings().measures_dir, params)


@celery_app.task(name=TASK_SURVEILLANCE_WEEKLY, autoretry_for=TRANSIENT, retry_backoff=60)
def surveillance_weekly() -> dict[str, int]:
    """surv-01/02 for the year so far, after each epi week: new alerts become Communications."""
    from fhirhub.services.measures import stored
    from fhirhub.services.measures.period import today_wita

    params = stored.year_to_date(today_wita())
    return stored.run(
        service().engine,
        get_settings().measures_dir,
        params,
        ["surv-01", "surv-02"],
        keep_reports=False,
    )


@celery_app.task(name=pulls.TASK_PULL, autoretry_for=TRANSIENT, retry_backoff=30, max_retries=3)
def pull(name: str) -> int:
    """``fhirhub pull <name>`` from beat: the new records of a source database, kept in the
    inbox and handed to the workers. A database that cannot be read is tried at the next beat."""
    settings = get_settings()
    url = pulls.configured_url(settings, name)
    if url is None:
        return 0
    try:
        report = pulls.pull(service(), name, url, lookback_days=pulls.lookback_days(settings, name))
    except pulls.SourceUnavailable as err:
        log.warning("pull source=%s unavailable: %s", name, err)
        return 0
    return report.kept
