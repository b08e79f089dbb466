"""The ingest service the edges call: receive, process, replay, and read the inbox.

Built once per process from the settings (``IngestService.from_settings``); the API, the CLI
and the Celery tasks are thin wrappers around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine

from fhirhub.config import Settings
from fhirhub.errors import FhirError, Issue, not_found
from fhirhub.ingest import adapters
from fhirhub.ingest.adapters import Context
from fhirhub.ingest.pipeline import Pipeline, Receipt, TransientError
from fhirhub.ingest.queue import Dispatcher
from fhirhub.model.instant import now_us, to_instant
from fhirhub.storage.inbox_repository import InboxRepository, InboxRow


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
        )
        dispatcher = Dispatcher(
            settings.broker_url,
            pipeline.process,
            visibility_timeout=settings.broker_visibility_timeout,
            queue=settings.broker_queue,
            background=background,
        )
        return cls(pipeline, dispatcher)

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
        """The synchronous path: keep, then process here, through the same pipeline."""
        receipt = self.pipeline.receive(source, payload, sender=sender, content_type=content_type)
        return self.pipeline.process(receipt.id)

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
    ) -> Answer:
        """``POST /fhir`` of a claimed Bundle: kept, processed here, and answered as the first
        time it was sent (its transaction-response, with full URLs on ``base_url``, or its
        rejection)."""
        try:
            row = self.submit_and_process(source, payload, content_type=content_type)
        except TransientError:
            raise FhirError(
                503,
                [Issue("transient", "The Bundle is kept but cannot be stored now; send it again")],
                {"Retry-After": "5"},
            ) from None
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
        """Hand out again what waits too long: lost enqueues, retryable failures."""
        cutoff = now_us() - older_than_seconds * 1_000_000
        with self.engine.connect() as conn:
            repo = InboxRepository(conn)
            ids = repo.ids(statuses=["received"], received_before=cutoff) + repo.ids(
                statuses=["failed"], max_attempts=self.pipeline.max_attempts
            )
        self.dispatcher.submit(sorted(set(ids)))
        return ids

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
    if row.error:
        out["error"] = row.error
    return out
