"""Handing inbox messages to the workers, only after the commit that stored them.

With ``FHIRHUB_BROKER_URL`` set (``redis://…`` or ``amqp://…``) a message id is sent to the
Celery task ``fhirhub.ingest.process_message`` by name, so this layer needs no worker code. With
no broker the same work runs in this process: at once (``background=False``) or on a thread of
its own, so a request can answer 202 first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from celery import Celery

log = logging.getLogger("fhirhub.ingest")

TASK_PROCESS = "fhirhub.ingest.process_message"
TASK_SWEEP = "fhirhub.ingest.sweep"
QUEUE = "fhirhub"


def celery_config(
    broker_url: str | None, visibility_timeout: int, queue: str = QUEUE
) -> dict[str, Any]:
    """The Celery settings shared by producers (the API) and consumers (the workers)."""
    return {
        "broker_url": broker_url or "memory://",
        "result_backend": None,
        "task_ignore_result": True,
        "task_default_queue": queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        # One task at a time per worker process: a long Bundle never holds others hostage.
        "worker_prefetch_multiplier": 1,
        "task_acks_late": False,  # per task; the ingest task opts in
        "task_reject_on_worker_lost": True,
        "broker_connection_retry_on_startup": True,
        # A producer whose broker is down gives up quickly; the message waits in the inbox.
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        "broker_transport_options": {"visibility_timeout": visibility_timeout},
        "worker_hijack_root_logger": False,
        "timezone": "Asia/Makassar",
    }


@lru_cache(maxsize=4)
def producer(broker_url: str, visibility_timeout: int, queue: str = QUEUE) -> Celery:
    app = Celery("fhirhub-producer")
    app.conf.update(celery_config(broker_url, visibility_timeout, queue))
    return app


class Dispatcher:
    """Sends message ids to the workers, or runs ``run_here`` on them in this process."""

    def __init__(
        self,
        broker_url: str | None,
        run_here: Callable[[int], Any],
        *,
        visibility_timeout: int = 3600,
        queue: str = QUEUE,
        background: bool = False,
    ) -> None:
        self.broker_url = broker_url
        self.queue = queue
        self.visibility_timeout = visibility_timeout
        self.run_here = run_here
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
            if (background and not broker_url)
            else None
        )

    @property
    def uses_broker(self) -> bool:
        return bool(self.broker_url)

    def submit(self, message_ids: list[int]) -> None:
        """Call after the commit. A broker that is down leaves the messages ``received``; beat's
        sweep hands them out again, so none is lost."""
        if self.broker_url:
            app = producer(self.broker_url, self.visibility_timeout, self.queue)
            for message_id in message_ids:
                try:
                    app.send_task(TASK_PROCESS, args=[message_id], queue=self.queue)
                except Exception as exc:  # kombu's OperationalError and friends
                    log.warning(
                        "enqueue failed message=%s error=%s", message_id, type(exc).__name__
                    )
            return
        for message_id in message_ids:
            if self._pool is not None:
                self._pool.submit(self._run_quietly, message_id)
            else:
                self._run_quietly(message_id)

    def _run_quietly(self, message_id: int) -> None:
        try:
            self.run_here(message_id)
        except Exception as exc:  # the message is kept as failed; the sweep retries it
            log.warning("in-process run message=%s error=%s", message_id, type(exc).__name__)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def queue_depth(
    broker_url: str | None, visibility_timeout: int = 3600, queue: str = QUEUE
) -> int | None:
    """Messages waiting in the ingest queue (None when there is no broker or it is down)."""
    if not broker_url:
        return None
    try:
        app = producer(broker_url, visibility_timeout)
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            if conn.transport.driver_type == "redis":
                client = conn.default_channel.client
                return int(client.llen(queue))
            declared = conn.default_channel.queue_declare(queue=queue, passive=True)
            return int(declared.message_count)
    except Exception:
        return None


def broker_ready(broker_url: str, visibility_timeout: int = 3600) -> bool:
    try:
        app = producer(broker_url, visibility_timeout)
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False
