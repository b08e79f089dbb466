"""Every SQL statement on the inbox."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fhirhub.storage.engine import is_postgres
from fhirhub.storage.inbox_models import inbox_messages as M


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    source: str
    sender: str | None
    content_type: str | None
    received_at: int
    checksum: str
    size: int
    status: str
    attempts: int
    outcome: str | None
    outcome_status: int | None
    error: str | None
    resources: int | None
    processed_at: int | None
    lease_until: int | None


_COLUMNS = [c for c in M.columns if c.name not in ("payload", "response")]


def _row(r: object) -> InboxRow:
    return InboxRow(**{c.name: getattr(r, c.name) for c in _COLUMNS})


class InboxRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = is_postgres(conn)

    def add(
        self,
        *,
        source: str,
        sender: str | None,
        content_type: str | None,
        received_at: int,
        checksum: str,
        payload: bytes,
    ) -> tuple[int, bool]:
        """Store a payload unless ``(source, checksum)`` is stored; return (id, newly added)."""
        [kept] = self.add_many(
            source=source,
            content_type=content_type,
            received_at=received_at,
            items=[(sender, checksum, payload)],
        )
        return kept

    def add_many(
        self,
        *,
        source: str,
        content_type: str | None,
        received_at: int,
        items: Sequence[tuple[str | None, str, bytes]],
    ) -> list[tuple[int, bool]]:
        """:meth:`add` for several payloads ((sender, checksum, payload) each) in one INSERT
        and, for those already stored, one SELECT: (id, newly added) of each, in order. Of two
        equal payloads of the batch the second is the first's duplicate, as when added one
        after the other."""
        if not items:
            return []
        rows = [
            {
                "source": source,
                "sender": sender,
                "content_type": content_type,
                "received_at": received_at,
                "checksum": checksum,
                "size": len(payload),
                "payload": zlib.compress(payload, 6),
                "status": "received",
                "attempts": 0,
            }
            for sender, checksum, payload in items
        ]
        dialect_insert = pg_insert if self.postgres else sqlite_insert
        stmt = (
            dialect_insert(M)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["source", "checksum"])
            .returning(M.c.id, M.c.checksum)
        )
        added = {checksum: int(i) for i, checksum in self.conn.execute(stmt)}
        known = {c for _, c, _ in items} - set(added)
        found: dict[str, int] = {}
        if known:
            found = {
                checksum: int(i)
                for i, checksum in self.conn.execute(
                    select(M.c.id, M.c.checksum).where(
                        M.c.source == source, M.c.checksum.in_(sorted(known))
                    )
                )
            }
        out: list[tuple[int, bool]] = []
        for _, checksum, _ in items:
            if checksum in added:
                out.append((added.pop(checksum), True))
                found[checksum] = out[-1][0]  # a second one in the batch is its duplicate
            else:
                out.append((found[checksum], False))
        return out

    def get(self, message_id: int, *, for_update: bool = False) -> InboxRow | None:
        stmt = select(*_COLUMNS).where(M.c.id == message_id)
        if for_update and self.postgres:
            stmt = stmt.with_for_update()
        r = self.conn.execute(stmt).first()
        return _row(r) if r is not None else None

    def get_many(
        self, message_ids: Sequence[int], *, for_update: bool = False
    ) -> dict[int, InboxRow]:
        """``get`` for several messages in one statement (locked in the order of their ids)."""
        if not message_ids:
            return {}
        stmt = select(*_COLUMNS).where(M.c.id.in_(sorted(set(message_ids)))).order_by(M.c.id)
        if for_update and self.postgres:
            stmt = stmt.with_for_update()
        return {int(r.id): _row(r) for r in self.conn.execute(stmt)}

    def with_payloads(
        self, message_ids: Sequence[int], *, for_update: bool = False
    ) -> dict[int, tuple[InboxRow, bytes]]:
        """``get_many`` with each message's payload, in the same statement."""
        if not message_ids:
            return {}
        stmt = (
            select(*_COLUMNS, M.c.payload)
            .where(M.c.id.in_(sorted(set(message_ids))))
            .order_by(M.c.id)
        )
        if for_update and self.postgres:
            stmt = stmt.with_for_update()
        return {int(r.id): (_row(r), zlib.decompress(r.payload)) for r in self.conn.execute(stmt)}

    def payload(self, message_id: int) -> bytes | None:
        raw = self.conn.execute(select(M.c.payload).where(M.c.id == message_id)).scalar()
        return zlib.decompress(raw) if raw is not None else None

    def claim(self, message_id: int, *, now: int, lease_until: int, max_attempts: int) -> bool:
        """Take a message for processing until ``lease_until``, counting the attempt; False
        when another worker holds it (its lease still runs) or it is finished or used up.

        One guarded UPDATE: of two workers claiming at once, exactly one changes the row (the
        other waits for its row lock on PostgreSQL, for the write lock on SQLite, and then no
        longer matches)."""
        claimable = _claimable(now)
        result = self.conn.execute(
            update(M)
            .where(M.c.id == message_id, M.c.attempts < max_attempts, claimable)
            .values(status="processing", attempts=M.c.attempts + 1, lease_until=lease_until)
        )
        return result.rowcount == 1

    def claim_many(
        self, message_ids: Sequence[int], *, now: int, lease_until: int, max_attempts: int
    ) -> dict[int, str]:
        """``claim`` for several messages in one guarded UPDATE, their rows locked in the order
        of their ids (so two workers claiming overlapping batches never wait for each other in
        a circle): the id and source of each message it took."""
        if not message_ids:
            return {}
        ids = sorted(set(message_ids))
        taken = select(M.c.id).where(M.c.id.in_(ids)).order_by(M.c.id)
        if self.postgres:
            taken = taken.with_for_update()
        result = self.conn.execute(
            update(M)
            .where(
                M.c.id.in_(taken.scalar_subquery()), M.c.attempts < max_attempts, _claimable(now)
            )
            .values(status="processing", attempts=M.c.attempts + 1, lease_until=lease_until)
            .returning(M.c.id, M.c.source)
        )
        return {int(i): source for i, source in result}

    def finish(
        self,
        message_id: int,
        *,
        status: str,
        at: int,
        outcome: str | None = None,
        outcome_status: int | None = None,
        error: str | None = None,
        resources: int | None = None,
        response: bytes | None = None,
    ) -> None:
        self.conn.execute(
            update(M)
            .where(M.c.id == message_id)
            .values(
                status=status,
                processed_at=at,
                lease_until=None,
                outcome=outcome,
                outcome_status=outcome_status,
                error=error,
                resources=resources,
                response=zlib.compress(response, 6) if response is not None else None,
            )
        )

    def processed(self, done: Sequence[tuple[int, int, bytes]], at: int) -> None:
        """:meth:`finish` of several messages stored: (id, resources written, response)."""
        if not done:
            return
        self.conn.execute(
            update(M)
            .where(M.c.id == bindparam("message_id"))
            .values(
                status="processed",
                processed_at=at,
                lease_until=None,
                outcome=None,
                outcome_status=None,
                error=None,
                resources=bindparam("written"),
                response=bindparam("compressed"),
            ),
            [
                {"message_id": i, "written": n, "compressed": zlib.compress(r, 6)}
                for i, n, r in done
            ],
        )

    def response(self, message_id: int) -> bytes | None:
        """The transaction-response Bundle (JSON) a processed message was answered with."""
        raw = self.conn.execute(select(M.c.response).where(M.c.id == message_id)).scalar()
        return zlib.decompress(raw) if raw is not None else None

    def reopen(self, message_id: int, max_attempts: int) -> None:
        """Back to ``received`` for a replay; the old outcome stays until the new one. The
        attempts go on counting (the replay is one more), below ``max_attempts`` so that it runs."""
        attempts = case((M.c.attempts >= max_attempts, max_attempts - 1), else_=M.c.attempts)
        self.conn.execute(
            update(M)
            .where(M.c.id == message_id)
            .values(status="received", attempts=attempts, lease_until=None)
        )

    def messages(
        self,
        *,
        status: str | None = None,
        source: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[InboxRow]:
        stmt = select(*_COLUMNS).where(M.c.id > after_id).order_by(M.c.id).limit(limit)
        if status:
            stmt = stmt.where(M.c.status == status)
        if source:
            stmt = stmt.where(M.c.source == source)
        return [_row(r) for r in self.conn.execute(stmt)]

    def ids(
        self,
        *,
        statuses: Sequence[str],
        source: str | None = None,
        max_attempts: int | None = None,
        received_before: int | None = None,
        limit: int = 10_000,
    ) -> list[int]:
        stmt = select(M.c.id).where(M.c.status.in_(statuses)).order_by(M.c.id).limit(limit)
        if source:
            stmt = stmt.where(M.c.source == source)
        if max_attempts is not None:
            stmt = stmt.where(M.c.attempts < max_attempts)
        if received_before is not None:
            stmt = stmt.where(M.c.received_at < received_before)
        return [int(i) for i in self.conn.execute(stmt).scalars()]

    def stranded(
        self, *, now: int, received_before: int, max_attempts: int, limit: int = 10_000
    ) -> list[int]:
        """Messages no live worker is on: ``received`` before ``received_before`` (their
        enqueue was lost, or the process that queued them died), ``processing`` whose lease
        ran out (their worker died; if used up, they are then marked failed), and ``failed``
        ones with attempts left.

        On PostgreSQL the rows a live worker is processing are locked (``FOR UPDATE`` for the
        whole of its transaction) and skipped."""
        stmt = (
            select(M.c.id)
            .where(
                or_(
                    and_(M.c.status == "received", M.c.received_at < received_before),
                    and_(
                        M.c.status == "processing",
                        or_(M.c.lease_until.is_(None), M.c.lease_until < now),
                    ),
                    and_(M.c.status == "failed", M.c.attempts < max_attempts),
                )
            )
            .order_by(M.c.id)
            .limit(limit)
        )
        if self.postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        return [int(i) for i in self.conn.execute(stmt).scalars()]

    def counts(self) -> list[tuple[str, str, int]]:
        """(source, status, messages) for every pair present."""
        stmt = select(M.c.source, M.c.status, func.count()).group_by(M.c.source, M.c.status)
        return [(s, st, int(n)) for s, st, n in self.conn.execute(stmt)]


def _claimable(now: int) -> ColumnElement[bool]:
    """A message a worker may claim at ``now``: new, failed, or left ``processing`` by a worker
    whose lease has run out."""
    return or_(
        M.c.status.in_(("received", "failed")),
        and_(
            M.c.status == "processing",
            or_(M.c.lease_until.is_(None), M.c.lease_until < now),
        ),
    )
