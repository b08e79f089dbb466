"""The ingest service the edges call: receive, process, replay, and read the inbox.

Built once per process from the settings (``IngestService.from_settings``); the API, the CLI
and the Celery tasks are thin wrappers around it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine

from fhirhub.config import Settings
from fhirhub.errors import FhirError, Issue, not_found
from fhirhub.ingest import adapters, hl7ack
from fhirhub.ingest.adapters import Context
from fhirhub.ingest.pipeline import Pipeline, Receipt, TransientError
from fhirhub.ingest.queue import Dispatcher
from fhirhub.model.instant import now_us, to_instant
from fhirhub.storage.inbox_repository import InboxRepository, InboxRow

log = logging.getLogger("fhirhub.ingest")


@dataclass(frozen=True)
class Answer:
    """What the client of ``POST /fhir`` gets for a claimed Bundle."""

    row: InboxRow
    status: int
    body: bytes  # a transaction-response Bundle or an OperationOutcome, JSON


@dataclass
class IngestService:
    pipeline: Pipeline
    dispatcher: Dispatcher
    sweep_after: int = 300
    sweep_interval: float = 60.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _sweeper: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def from_settings(
        cls, engine: Engine, settings: Settings, *, background: bool = False
    ) -> IngestService:
        context = Context(settings.mappings_dir, settings.terminology_dir)
        pipeline = Pipeline(
            engine,
            context,
            base_url=settings.base_url or "urn:fhirhub",
            max_attempts=settings.ingest_max_attempts,
            lease_seconds=settings.ingest_lease_seconds,
            audited=settings.audit == "on",
        )
        dispatcher = Dispatcher(
            settings.broker_url,
            pipeline.process,
            visibility_timeout=settings.broker_visibility_timeout,
            queue=settings.broker_queue,
            background=background,
        )
        return cls(
            pipeline,
            dispatcher,
            sweep_after=settings.ingest_sweep_after,
            sweep_interval=settings.ingest_sweep_interval,
        )

    @property
    def engine(self) -> Engine:
        return self.pipeline.engine

    def submit(
        self,
        source: str,
        payload: bytes,
        *,
        sender: str | None = None,
        content_type: str | None = None,
    ) -> Receipt:
        """Keep the payload (committed), then hand it to the workers."""
        receipt = self.pipeline.receive(source, payload, sender=sender, content_type=content_type)
        if not receipt.duplicate or receipt.status == "failed":  # a waiting one is queued
            self.dispatcher.submit([receipt.id])
        return receipt

    def submit_and_process(
        self,
        source: str,
        payload: bytes,
        *,
        sender: str | None = None,
        content_type: str | None = None,
    ) -> InboxRow:
        """The synchronous path: keep, then process here, through the same pipeline. The same
        payload being processed by another worker is waited for. Raises ``FhirError`` 503 when
        it cannot be stored now (a concurrent writer, the database away): it is kept and
        retried, and sending it again is safe."""
        receipt = self.pipeline.receive(source, payload, sender=sender, content_type=content_type)
        try:
            row = self.pipeline.process(receipt.id)
            deadline = time.monotonic() + self.pipeline.lease_seconds
            while row.status == "processing" and time.monotonic() < deadline:
                time.sleep(0.05)  # another worker holds it; its answer is ours
                row = self.get(receipt.id)
            if row.status == "processing":
                raise TransientError("still processing elsewhere")
        except TransientError:
            raise FhirError(
                503,
                [Issue("transient", "The message is kept but cannot be stored now; send it again")],
                {"Retry-After": "5"},
            ) from None
        return row

    def claim(self, bundle: dict[str, Any]) -> str | None:
        """The source whose adapter claims a Bundle posted to ``POST /fhir``, if any."""
        return adapters.claiming(bundle, self.pipeline.context)

    def answer(
        self,
        source: str,
        payload: bytes,
        *,
        content_type: str | None = None,
        base_url: str | None = None,
        sender: str | None = None,
    ) -> Answer:
        """``POST /fhir`` of a claimed Bundle: kept, processed here, and answered as the first
        time it was sent (its transaction-response, with full URLs on ``base_url``, or its
        rejection). ``sender``: the authenticated facility's Organization, when there is one."""
        row = self.submit_and_process(source, payload, sender=sender, content_type=content_type)
        if row.status == "processed":
            with self.engine.connect() as conn:
                response = InboxRepository(conn).response(row.id)
            if response is not None:
                return Answer(row, 200, self._rebased(response, base_url))
        if row.status == "rejected" and row.outcome:
            return Answer(row, row.outcome_status or 422, row.outcome.encode())
        raise FhirError.single(
            500,
            "exception",
            f"The Bundle is kept as inbox message {row.id} but could not be processed "
            f"({row.status}); an operator can replay it",
        )

    def _rebased(self, response: bytes, base_url: str | None) -> bytes:
        """The stored transaction-response with its ``fullUrl``s on the client's base URL."""
        stored_base = self.pipeline.base_url.rstrip("/") + "/"
        if not base_url or base_url.rstrip("/") + "/" == stored_base:
            return response
        bundle = orjson.loads(response)
        for entry in bundle.get("entry", []):
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str) and full_url.startswith(stored_base):
                entry["fullUrl"] = base_url.rstrip("/") + "/" + full_url[len(stored_base) :]
        return orjson.dumps(bundle)

    def replay(self, message_ids: list[int]) -> list[int]:
        """Reopen rejected or failed messages and hand them out again."""
        reopened = [self.pipeline.reopen(i).id for i in message_ids]
        self.dispatcher.submit(reopened)
        return reopened

    def sweep(self, older_than_seconds: int) -> list[int]:
        """Hand out again what no live worker is on: messages ``received`` more than
        ``older_than_seconds`` ago (a lost enqueue, or a process that died with them queued),
        ``processing`` past their lease (a worker that died mid-way), retryable failures.
        Handing one out twice is safe: a message is claimed by one worker only."""
        now = now_us()
        with self.engine.begin() as conn:
            ids = InboxRepository(conn).stranded(
                now=now,
                received_before=now - older_than_seconds * 1_000_000,
                max_attempts=self.pipeline.max_attempts,
            )
        if ids:
            log.info("sweep messages=%s", len(ids))
        self.dispatcher.submit(ids)
        return ids

    def start(self) -> None:
        """With no broker, this process sweeps the inbox itself (beat does it otherwise): at
        once, for what a process before it left behind, then every ``sweep_interval``."""
        if self.dispatcher.uses_broker or self._sweeper is not None:
            return
        self._stop.clear()
        self._sweeper = threading.Thread(
            target=self._sweep_until_stopped, name="ingest-sweep", daemon=True
        )
        self._sweeper.start()

    def _sweep_until_stopped(self) -> None:
        older_than = 0  # at start-up: every message waiting
        while True:
            try:
                self.sweep(older_than)
            except Exception as exc:  # the database is away; the next sweep tries again
                log.warning("sweep failed error=%s", type(exc).__name__)
            older_than = self.sweep_after
            if self._stop.wait(self.sweep_interval):
                return

    def stop(self) -> None:
        """A graceful stop: no more sweeps, and every message queued here is processed before
        this returns."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join()
            self._sweeper = None
        self.dispatcher.close()

    # --- reading -----------------------------------------------------------------------------

    def messages(
        self,
        *,
        status: str | None = None,
        source: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[InboxRow]:
        with self.engine.connect() as conn:
            return InboxRepository(conn).messages(
                status=status, source=source, after_id=after_id, limit=limit
            )

    def get(self, message_id: int) -> InboxRow:
        with self.engine.connect() as conn:
            row = InboxRepository(conn).get(message_id)
        if row is None:
            raise not_found(f"No inbox message {message_id}")
        return row

    def payload(self, message_id: int) -> bytes:
        with self.engine.connect() as conn:
            raw = InboxRepository(conn).payload(message_id)
        if raw is None:
            raise not_found(f"No inbox message {message_id}")
        return raw

    def counts(self) -> list[tuple[str, str, int]]:
        with self.engine.connect() as conn:
            return InboxRepository(conn).counts()


def describe(row: InboxRow) -> dict[str, Any]:
    """An inbox message as JSON, without its payload."""
    out: dict[str, Any] = {
        "id": row.id,
        "source": row.source,
        "sender": row.sender,
        "contentType": row.content_type,
        "received": to_instant(row.received_at),
        "sha256": row.checksum,
        "bytes": row.size,
        "status": row.status,
        "attempts": row.attempts,
    }
    if row.processed_at is not None:
        out["processed"] = to_instant(row.processed_at)
    if row.resources is not None:
        out["resources"] = row.resources
    if row.outcome:
        out["outcome"] = orjson.loads(row.outcome)
        out["outcomeStatus"] = row.outcome_status or 422
        if hl7ack.is_hl7(row.content_type):  # the acknowledgement's ERR segments, as sent
            errors = hl7ack.errors_of(out["outcome"])
            out["hl7"] = {
                "ack": hl7ack.rejection_code(errors),
                "err": hl7ack.err_segments(errors),
            }
    if row.error:
        out["error"] = row.error
    return out
