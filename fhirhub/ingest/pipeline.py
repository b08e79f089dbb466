"""The ingest pipeline, one for every source.

1. ``receive``: the raw payload is stored in the inbox (compressed, with its sha256) in a
   transaction of its own, committed before anything else happens. The same payload from the
   same source is the same message.
2. ``process``: in a second transaction the source's adapter maps the payload to a canonical
   transaction Bundle, the canonical pass and provenance are applied, and the Bundle is stored
   through the one write path; the message is marked ``processed`` in that same transaction, so
   its data and its status commit together. A FhirError rolls the data back (savepoint) and
   marks it ``rejected`` with its OperationOutcome; any other error leaves it ``failed``.

Processing is idempotent: a message that is processed or rejected is not processed again unless
replayed, and a worker killed mid-way leaves nothing but a counted attempt. A worker first claims
the message (``processing``, with a lease) in a committed transaction of its own; a message left
``processing`` by a worker that died is claimed again by the sweep once the lease has run out,
and the status check inside the storing transaction (under the row lock on PostgreSQL, the write
lock on SQLite) makes sure only one worker ever stores it.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from fhirhub.errors import FhirError, Issue, not_found, operation_outcome
from fhirhub.ingest import adapters, metrics, stamps, storing
from fhirhub.ingest.adapters import Context, Mapped, Message
from fhirhub.ingest.normalise import canonicalise_bundle, unresolved_references
from fhirhub.model.instant import now_us
from fhirhub.model.json import has_nul
from fhirhub.services import audit
from fhirhub.storage.inbox_repository import InboxRepository, InboxRow

log = logging.getLogger("fhirhub.ingest")

# Errors worth another attempt: the database went away or a concurrent writer won a race.
TRANSIENT = (OperationalError, IntegrityError, psycopg.OperationalError, psycopg.IntegrityError)
FINAL = ("processed", "rejected")
MAX_LABEL = 128  # inbox_messages.content_type and .sender


class TransientError(Exception):
    """Processing failed for a reason that may pass; the message is ``failed`` and retryable."""


@dataclass(frozen=True, slots=True)
class _Claim:
    """A message a batch claimed: its id and source."""

    id: int
    source: str


@dataclass(frozen=True)
class Receipt:
    id: int
    status: str
    duplicate: bool


@dataclass
class Pipeline:
    engine: Engine
    context: Context
    base_url: str = "urn:fhirhub"
    max_attempts: int = 5
    lease_seconds: int = 60  # a claim older than this is taken to be a dead worker's
    audited: bool = True  # an AuditEvent for each message stored or rejected (FHIRHUB_AUDIT)

    # --- 1. receive --------------------------------------------------------------------------

    def receive(
        self,
        source: str,
        payload: bytes,
        *,
        sender: str | None = None,
        content_type: str | None = None,
    ) -> Receipt:
        adapter = adapters.get(source)  # an unknown source is the client's mistake: 404
        _refuse_unkeepable(payload, content_type, sender)
        checksum = _checksum(adapter, payload)
        with self.engine.begin() as conn:
            repo = InboxRepository(conn)
            message_id, new = repo.add(
                source=source,
                sender=sender,
                content_type=content_type,
                received_at=now_us(),
                checksum=checksum,
                payload=payload,
            )
            row = repo.get(message_id)
        assert row is not None
        metrics.RECEIVED.labels(source, str(not new).lower()).inc()
        log.info(
            "received message=%s source=%s bytes=%s duplicate=%s",
            message_id,
            source,
            len(payload),
            not new,
        )
        return Receipt(message_id, row.status, not new)

    def receive_many(
        self,
        source: str,
        payloads: list[tuple[bytes, str | None]],
        *,
        content_type: str | None = None,
    ) -> list[Receipt]:
        """``receive`` for many payloads ((payload, sender) pairs) in one transaction: all are
        kept or none is. For a pull, which reads records in batches: one commit per batch
        rather than per record."""
        adapter = adapters.get(source)
        for payload, sender in payloads:
            _refuse_unkeepable(payload, content_type, sender)
        receipts: list[Receipt] = []
        with self.engine.begin() as conn:
            repo = InboxRepository(conn)
            kept = repo.add_many(
                source=source,
                content_type=content_type,
                received_at=now_us(),
                items=[(sender, _checksum(adapter, p), p) for p, sender in payloads],
            )
            again = repo.get_many([message_id for message_id, new in kept if not new])
            for message_id, new in kept:
                status = "received" if new else again[message_id].status
                receipts.append(Receipt(message_id, status, not new))
        for receipt in receipts:
            metrics.RECEIVED.labels(source, str(receipt.duplicate).lower()).inc()
        log.info(
            "received messages=%s source=%s new=%s",
            len(receipts),
            source,
            sum(not r.duplicate for r in receipts),
        )
        return receipts

    # --- 2. process --------------------------------------------------------------------------

    def process(self, message_id: int) -> InboxRow:
        """Process a received (or failed) message; return its row as left.

        Raises TransientError when it failed for a reason worth retrying.
        """
        with self.engine.begin() as conn:  # the attempt counts even if the worker then dies
            repo = InboxRepository(conn)
            row = repo.get(message_id, for_update=True)
            if row is None:
                raise not_found(f"No inbox message {message_id}")
            now = now_us()
            if row.status in FINAL or (
                row.status == "processing" and (row.lease_until or 0) >= now
            ):
                return row  # finished, or a live worker holds it
            if row.attempts >= self.max_attempts:
                repo.finish(
                    message_id,
                    status="failed",
                    at=now,
                    error=f"gave up after {row.attempts} attempts",
                )
                return repo.get(message_id) or row
            lease_until = now + self.lease_seconds * 1_000_000
            if not repo.claim(
                message_id, now=now, lease_until=lease_until, max_attempts=self.max_attempts
            ):
                return repo.get(message_id) or row  # another worker claimed it first
        return self._run(message_id, row.source)

    def _run(self, message_id: int, source: str) -> InboxRow:
        """Store a message this worker has claimed, in a transaction of its own."""
        started = time.perf_counter()
        outcome = "failed"
        try:
            outcome = self._process(message_id)
            if outcome in FINAL and self.audited:  # its AuditEvent committed with it
                audit.mark_recorded()
        except TRANSIENT as exc:
            self._fail(message_id, exc)
            raise TransientError(type(exc).__name__) from exc
        except DBAPIError as exc:
            self._fail(message_id, exc)
            raise TransientError(type(exc).__name__) from exc
        except Exception as exc:  # a bug or a broken adapter: keep the message, say why
            self._fail(message_id, exc)
            # The type and the frames only: an exception's message can quote patient data.
            log.error(
                "failed message=%s source=%s error=%s\n%s",
                message_id,
                source,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
        finally:
            elapsed = time.perf_counter() - started
            metrics.LATENCY.labels(source, outcome).observe(elapsed)
            metrics.FINISHED.labels(source, outcome).inc()
        with self.engine.connect() as conn:
            done = InboxRepository(conn).get(message_id)
        assert done is not None
        codes = (
            ",".join(sorted({i["code"] for i in orjson.loads(done.outcome)["issue"]}))
            if done.outcome
            else "-"
        )
        log.info(
            "finished message=%s source=%s outcome=%s issues=%s resources=%s seconds=%.3f",
            message_id,
            source,
            done.status,
            codes,
            done.resources or 0,  # none stored when rejected
            elapsed,
        )
        return done

    def process_many(self, message_ids: list[int]) -> dict[int, InboxRow]:
        """``process`` for several messages in two transactions rather than two each (group
        commit): one claims them all, one stores them all, each message's data in a savepoint
        of its own, so that a rejected message rolls back only itself; the data of all of them
        commits at once, with their statuses. Returns each message's row as left.

        A message that is not simply claimable (finished, held by another worker, out of
        attempts) goes through ``process`` alone. When the storing transaction fails for any
        other reason than a rejection (a deadlock, a bug, the database away), none of it is
        kept and each claimed message is stored alone, so that one bad message never costs the
        others theirs."""
        rows: dict[int, InboxRow] = {}
        with self.engine.begin() as conn:  # the attempts count even if the worker then dies
            now = now_us()
            taken = InboxRepository(conn).claim_many(
                message_ids,
                now=now,
                lease_until=now + self.lease_seconds * 1_000_000,
                max_attempts=self.max_attempts,
            )
        claimed = [_Claim(i, taken[i]) for i in sorted(taken)]
        alone = [i for i in sorted(set(message_ids)) if i not in taken]
        if claimed:
            started = time.perf_counter()
            try:
                with stamps.held():  # the batch mapped with the tables of its start
                    outcomes = self._process_batch(claimed)
            except Exception as exc:  # nothing of the batch is kept; each is stored alone
                log.warning(
                    "batch of messages=%s failed error=%s; storing them one by one",
                    len(claimed),
                    type(exc).__name__,
                )
                for row in claimed:
                    try:
                        rows[row.id] = self._run(row.id, row.source)
                    except TransientError:
                        rows[row.id] = self._current(row.id)
            else:
                elapsed = time.perf_counter() - started
                with self.engine.connect() as conn:
                    finished = InboxRepository(conn).get_many([row.id for row in claimed])
                    for row in claimed:
                        done = finished[row.id]
                        rows[row.id] = done
                        metrics.LATENCY.labels(row.source, outcomes[row.id]).observe(
                            elapsed / len(claimed)
                        )
                        metrics.FINISHED.labels(row.source, outcomes[row.id]).inc()
                        log.info(
                            "finished message=%s source=%s outcome=%s resources=%s batch=%s",
                            row.id,
                            row.source,
                            done.status,
                            done.resources or 0,
                            len(claimed),
                        )
        for message_id in alone:
            try:
                rows[message_id] = self.process(message_id)
            except TransientError:
                rows[message_id] = self._current(message_id)
        return rows

    def _current(self, message_id: int) -> InboxRow:
        with self.engine.connect() as conn:
            row = InboxRepository(conn).get(message_id)
        if row is None:
            raise not_found(f"No inbox message {message_id}")
        return row

    def _process_batch(self, claimed: list[_Claim]) -> dict[int, str]:
        outcomes: dict[int, str] = {}
        with self.engine.begin() as conn:
            repo = InboxRepository(conn)
            ids = [claim.id for claim in claimed]
            read = repo.with_payloads(ids, for_update=True)
            payloads = {i: payload for i, (_, payload) in read.items()}
            live: list[InboxRow] = []
            for claim in claimed:
                row = read[claim.id][0] if claim.id in read else None
                if row is None or row.status != "processing":
                    outcomes[claim.id] = row.status if row else "failed"
                else:
                    live.append(row)
            together, mapped = self._store_together(conn, repo, live, payloads)
            for row in live:
                if row.id in together:
                    outcomes[row.id] = "processed"
                else:
                    outcomes[row.id] = self._store_claimed(
                        conn, repo, row, payloads.get(row.id), mapped.get(row.id)
                    )
        return outcomes

    def _store_together(
        self,
        conn: Any,
        repo: InboxRepository,
        rows: list[InboxRow],
        payloads: dict[int, bytes],
    ) -> tuple[set[int], dict[int, Mapped]]:
        """Write as one (``storing.store_together``) the messages of a batch that may be: mapped
        without error, from the first one's sender, declaring no merges, and independent of each
        other (``storing.claims``). Returns the ids it stored, and the mappings of the messages
        it left untouched for the caller to store one by one (all of them when writing them
        together failed: that is rolled back)."""
        group: list[tuple[InboxRow, Message, Mapped]] = []
        mapped: dict[int, Mapped] = {}
        if len(rows) < 2:
            return set(), mapped
        named: set[str] = set()
        for row in rows:
            payload = payloads.get(row.id)
            if payload is None:
                continue
            message = Message(
                row.id, row.source, row.sender, row.content_type, row.received_at, payload
            )
            try:
                mapped[row.id] = this = self.canonical(message)
            except FhirError:
                continue  # rejected when stored alone
            claimed = storing.claims(this.bundle)
            if claimed is None or this.merges or claimed & named:
                continue
            if group:
                _, first, first_mapped = group[0]
                sender = (first.sender, first_mapped.sender, first_mapped.organization)
                if (message.sender, this.sender, this.organization) != sender:
                    continue
            named |= claimed
            group.append((row, message, this))
        if len(group) < 2:
            return set(), mapped
        for row, _, _ in group:  # stamped while written together: mapped again if alone
            del mapped[row.id]
        items = [(m, message, row.checksum, self._trail(message)) for row, message, m in group]
        try:
            with conn.begin_nested():
                responses = storing.store_together(conn, items, self.base_url)
        except FhirError:
            return set(), mapped
        repo.processed(
            [
                (row.id, _written(response), orjson.dumps(response))
                for (row, _, _), response in zip(group, responses, strict=True)
            ],
            at=now_us(),
        )
        return {row.id for row, _, _ in group}, mapped

    def _process(self, message_id: int) -> str:
        with self.engine.begin() as conn:
            repo = InboxRepository(conn)
            row = repo.get(message_id, for_update=True)
            if row is None or row.status != "processing":  # another worker finished it
                return row.status if row else "failed"
            return self._store_claimed(conn, repo, row)

    def _store_claimed(
        self,
        conn: Any,
        repo: InboxRepository,
        row: InboxRow,
        payload: bytes | None = None,
        mapped: Mapped | None = None,
    ) -> str:
        """Map (unless ``mapped``) and store one claimed message in ``conn``'s transaction, and
        finish it there: ``processed``, or ``rejected`` (its data rolled back to a savepoint)."""
        message_id = row.id
        if payload is None:
            payload = repo.payload(message_id)
        assert payload is not None
        message = Message(
            row.id, row.source, row.sender, row.content_type, row.received_at, payload
        )
        trail = self._trail(message)
        try:
            with conn.begin_nested():
                response = self._store(conn, message, row.checksum, trail, mapped)
        except FhirError as err:
            repo.finish(
                message_id,
                status="rejected",
                at=now_us(),
                outcome=orjson.dumps(operation_outcome(err.issues)).decode(),
                outcome_status=err.status,
            )
            if trail is not None:  # what the savepoint stored was rolled back
                trail.forget()
                storing.store_audit(conn, trail, err.status)
            return "rejected"
        # its AuditEvent went with its data
        repo.processed([(message_id, _written(response), orjson.dumps(response))], at=now_us())
        return "processed"

    def canonical(self, message: Message) -> Mapped:
        """The message as a canonical transaction Bundle (before provenance is added)."""
        adapter = adapters.get(message.source)
        mapped = adapter.map(message, self.context)
        bundle = mapped.bundle
        if bundle.get("type") != "transaction":
            raise FhirError.single(
                500, "exception", f"adapter '{message.source}' did not make a transaction Bundle"
            )
        dangling = unresolved_references(bundle)
        if dangling:
            raise FhirError(422, dangling)
        canonicalise_bundle(bundle, self.context.regions, self.context.concept_maps)
        return mapped

    def _trail(self, message: Message) -> audit.Trail | None:
        """The AuditEvent of storing ``message``: who is the client of the request under way
        (``POST /fhir``, ``?mode=sync``), else the message's source and sender (a worker, the
        MLLP listener, a pull)."""
        if not self.audited:
            return None
        context = audit.current() or audit.Context(
            agent=lambda: audit.Agent(source=message.source, organization=message.sender)
        )
        trail = audit.Trail(context, kind="ingest")
        trail.extra.append(
            audit.Entity(identifier=(audit.INBOX_SYSTEM, str(message.id)), role="20")  # Job
        )
        return trail

    def _store(
        self,
        conn: Any,
        message: Message,
        checksum: str,
        trail: audit.Trail | None = None,
        mapped: Mapped | None = None,
    ) -> dict[str, Any]:
        mapped = mapped or self.canonical(message)
        return storing.store(conn, mapped, message, checksum, trail, self.base_url)

    def _fail(self, message_id: int, exc: BaseException) -> None:
        # The class name only: messages of database errors can quote patient data.
        try:
            with self.engine.begin() as conn:
                InboxRepository(conn).finish(
                    message_id, status="failed", at=now_us(), error=type(exc).__name__
                )
        except Exception:  # the database itself is down; the message stays as it was
            log.warning("could not mark message=%s failed", message_id)

    # --- replay ------------------------------------------------------------------------------

    def reopen(self, message_id: int) -> InboxRow:
        """Make a message processable again (after its mapping was fixed)."""
        with self.engine.begin() as conn:
            repo = InboxRepository(conn)
            row = repo.get(message_id, for_update=True)
            if row is None:
                raise not_found(f"No inbox message {message_id}")
            if row.status == "processed":
                raise FhirError(
                    409,
                    [Issue("conflict", f"Inbox message {message_id} is already processed")],
                )
            if row.status == "processing" and (row.lease_until or 0) >= now_us():
                raise FhirError(
                    409,
                    [Issue("conflict", f"Inbox message {message_id} is being processed")],
                )
            repo.reopen(message_id, self.max_attempts)
            return repo.get(message_id) or row


def _checksum(adapter: Any, payload: bytes) -> str:
    """The inbox's key of a payload: its sha256, or, for a source whose messages carry their
    own id (HL7 v2: sending facility + MSH-10), the sha256 of that id: a message sent again
    with it is the same message, whatever its bytes."""
    key = getattr(adapter, "message_key", None)
    message_key = key(payload) if callable(key) else None
    if message_key:
        return hashlib.sha256(message_key.encode()).hexdigest()
    return hashlib.sha256(payload).hexdigest()


def _refuse_unkeepable(payload: bytes, content_type: str | None, sender: str | None) -> None:
    """400, nothing kept, for what no database could store or search alike: NUL characters
    (PostgreSQL cannot keep them in JSONB), and header values past their columns or not
    ASCII."""
    if has_nul(payload):
        raise FhirError.single(400, "invalid", "NUL characters are not allowed in a payload")
    if content_type is not None and len(content_type) > MAX_LABEL:
        raise FhirError.single(
            400, "invalid", f"Content-Type is longer than {MAX_LABEL} characters"
        )
    if content_type is not None and not (content_type.isascii() and content_type.isprintable()):
        # A media type is ASCII (RFC 9110); the admin API gives it back in a header.
        raise FhirError.single(400, "invalid", "Content-Type must be printable ASCII")
    if sender is not None and len(sender) > MAX_LABEL:
        raise FhirError.single(400, "invalid", f"sender is longer than {MAX_LABEL} characters")


def default_context(mappings_dir: Path, terminology_dir: Path) -> Context:
    return Context(mappings_dir=mappings_dir, terminology_dir=terminology_dir)


def _written(response: dict[str, Any]) -> int:
    """How many resources a transaction-response says were written (or found) with success."""
    return sum(
        1
        for e in response.get("entry", [])
        if str(e.get("response", {}).get("status", "")).startswith("20")
    )
