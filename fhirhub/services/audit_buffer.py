"""Buffered AuditEvents: reads, searches, refusals and failed writes (issue 13).

A successful write's AuditEvent is stored in the write's own transaction (``Writer.finish``).
Everything else would add a database write to every read, so the request only appends a small
record to this in-process buffer (no JSON, no I/O); a thread of the process turns the records
into AuditEvents and stores them through the one write path (``Writer.put_internal``, a
normal stored and indexed resource) once ``every`` are waiting or ``interval`` seconds after
the first one came. Storing them is not audited (no recursion).

A process that crashes loses what waited, at most ``interval`` seconds of reads; a graceful
stop (:meth:`AuditBuffer.stop`) stores it first. More than ``max_waiting`` records waiting (the
database is down) are dropped, counted and logged, rather than growing without bound.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from fhirhub.model.instant import now_us, to_instant
from fhirhub.services import audit
from fhirhub.services.writes import Writer
from fhirhub.storage.repository import ResourceRepository

log = logging.getLogger("fhirhub.audit")
_LIVE: weakref.WeakSet[AuditBuffer] = weakref.WeakSet()


# A request's interaction and the entities its path names (audit.kind_of_request).
Request = tuple[str, list[audit.Entity]]


@dataclass(frozen=True, slots=True)
class Pending:
    """One interaction to audit, as the request left it."""

    recorded_us: int
    method: str
    path: str
    query: str
    status: int
    agent: audit.Agent
    address: str | None
    request_id: str | None
    content: str | None = None  # a read's stored JSON, for the Patient it belongs to

    def entities(
        self, request: Request, detail: tuple[tuple[str, str], ...] = ()
    ) -> tuple[str, list[audit.Entity]]:
        """The interaction and the entities it touched (ids only), from ``request`` (its path
        read by :func:`audit.kind_of_request`); ``detail`` is the first one's (a grouped
        read's request id and time)."""
        kind, entities = request
        if entities and (detail or self.content is not None):
            first = entities[0]
            role = first.role
            if self.content is not None and first.reference:
                res_type, _, rest = first.reference.partition("/")
                res_id = rest.split("/", 1)[0]
                patient = audit.patient_from_content(res_type, res_id, self.content)
                if res_type == "Patient" and patient == res_id:  # the record read is the Patient
                    role = audit.PATIENT_ROLE
                elif patient is not None:
                    entities.append(audit.patient_entity(patient))
            entities[0] = audit.Entity(
                first.reference, first.res_type, role, first.identifier, first.name, detail
            )
        if kind.startswith("search") and self.query:
            searched = next((e.res_type for e in entities if e.role == "24"), None)
            entities += [
                audit.patient_entity(p) for p in audit.patients_in_query(searched, self.query)
            ]
        return kind, entities

    def group(self, kind: str) -> tuple[Any, ...] | None:
        """Reads by id (``kind``) that succeeded are grouped (see :func:`grouped_event`): by
        interaction, client, address and status."""
        if self.status >= 400 or self.method not in ("GET", "HEAD") or kind not in GROUPED:
            return None
        return (kind, self.agent, self.address, self.status)

    def event(self, request: Request) -> dict[str, Any]:
        kind, entities = self.entities(request)
        return audit.event(
            kind,
            recorded_us=self.recorded_us,
            outcome=audit.outcome_of(self.status),
            agent=self.agent,
            address=self.address,
            request_id=self.request_id,
            entities=entities,
            status=self.status,
        )


GROUPED = ("read", "vread")
# Requests of a batch turned into events at a time: building a batch's events holds the GIL for
# some 10 us a read, and the server's event loop waits for the GIL meanwhile (up to the switch
# interval, 5 ms, each time it asks); slices of this many keep each stretch near 1 ms.
SLICE = 100


def grouped_event(group: list[tuple[Pending, Request]]) -> dict[str, Any]:
    """One AuditEvent for reads by id of one client from one address with one status, within
    one batch: an entity per resource read, its detail the request id and time; ``period``
    from the first to the last. A stored event per read by id costs more than the read itself
    (its search index rows); grouped, a read costs one index row (``entity``: ``patient`` is
    an alias of its Patient rows)."""
    first, last = group[0][0], group[-1][0]
    kind = "read"
    entities: list[audit.Entity] = []
    for item, request in group:
        detail = (
            ("request-id", item.request_id or "-"),
            ("recorded", to_instant(item.recorded_us)),
        )
        kind, found = item.entities(request, detail)
        entities += found
    return audit.event(
        kind,
        recorded_us=last.recorded_us,
        outcome=audit.outcome_of(first.status),
        agent=first.agent,
        address=first.address,
        entities=entities,
        status=first.status,
        period=(first.recorded_us, last.recorded_us),
    )


def events_of(items: list[Pending]) -> list[dict[str, Any]]:
    """The AuditEvents of a batch: one per interaction, reads by id grouped (each group where
    its first read came)."""
    groups: dict[Any, list[tuple[Pending, Request]]] = {}
    for n, item in enumerate(items):
        request = audit.kind_of_request(item.method, item.path)  # each path parsed once
        key = item.group(request[0])
        groups.setdefault(n if key is None else key, []).append((item, request))
    return [
        group[0][0].event(group[0][1]) if len(group) == 1 else grouped_event(group)
        for group in groups.values()
    ]


class AuditBuffer:
    """AuditEvents waiting to be stored, and the thread that stores them."""

    def __init__(
        self,
        engine: Engine,
        *,
        every: int = 500,
        interval: float = 1.0,
        max_waiting: int = 100_000,
    ) -> None:
        self.engine = engine
        self.every = every
        self.interval = interval
        self.max_waiting = max_waiting
        self.stored = 0
        self.dropped = 0
        self._waiting: list[Pending] = []
        self._cond = threading.Condition()
        self._flushing = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        _LIVE.add(self)

    def add(self, item: Pending) -> None:
        """Keep ``item`` for the next batch (called on the request's event loop: no I/O)."""
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.warning("audit buffer full: %s events dropped", self.dropped)
                return
            self._waiting.append(item)
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="fhirhub-audit", daemon=True)
                self._thread.start()
            if len(self._waiting) >= self.every:
                self._cond.notify()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def flush(self) -> int:
        """Store what waits now; returns how many were stored."""
        with self._flushing:
            with self._cond:
                items, self._waiting = self._waiting, []
            if not items:
                return 0
            try:
                with self.engine.begin() as conn:
                    writer = Writer(ResourceRepository(conn), patient_index=False, trail=None)
                    for start in range(0, len(items), SLICE):
                        for resource in events_of(items[start : start + SLICE]):
                            writer.put_internal(resource, new=True, index=audit.index_of(resource))
                        time.sleep(0)  # the server's requests wait for the GIL: let them run
                    writer.flush()
            except Exception as exc:  # the class only: a database error may quote a row
                self.dropped += len(items)
                log.warning(
                    "could not store %s audit events error=%s", len(items), type(exc).__name__
                )
                # The engine is not disposed: that would orphan the connections requests hold
                # (left open when they come back); the pool drops a broken one by itself.
                return 0
            self.stored += len(items)
            return len(items)

    def stop(self, *, store: bool = True) -> None:
        """Store what waits (unless ``store`` is false: drop it) and end the thread (a graceful
        stop of the server)."""
        with self._cond:
            self._stopping = True
            thread, self._thread = self._thread, None
            if not store:
                self._waiting = []
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self.flush()
        # A batch may have opened a connection on an engine its owner had already disposed (a
        # test's app): close what the pool keeps rather than leave it open.
        self.engine.dispose()
        with self._cond:
            self._stopping = False

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                if not self._waiting:
                    self._cond.wait(self.interval)
                if self._waiting and len(self._waiting) < self.every and not self._stopping:
                    # the first one waits at most ``interval``
                    first = self._waiting[0].recorded_us
                    left = self.interval - (now_us() - first) / 1e6
                    if left > 0:
                        self._cond.wait_for(
                            lambda: len(self._waiting) >= self.every or self._stopping, left
                        )
            self.flush()


def stop_all(*, store: bool = True) -> None:
    """Stop every buffer of this process, storing or dropping what waits (a test, before it
    empties the database an earlier test's app may still write to)."""
    for buffer in list(_LIVE):
        buffer.stop(store=store)
