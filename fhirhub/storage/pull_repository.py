"""Every SQL statement on the pull watermarks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from fhirhub.storage.pull_models import pull_watermarks as W


@dataclass(frozen=True, slots=True)
class Watermark:
    source: str
    target: str
    location: str
    position: str
    rows: int
    updated_at: int


class PullRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, source: str, target: str) -> Watermark | None:
        row = self.conn.execute(select(W).where(W.c.source == source, W.c.target == target)).first()
        return Watermark(**row._mapping) if row is not None else None

    def advance(
        self, source: str, target: str, location: str, position: str, rows: int, now: int
    ) -> Watermark:
        """Move the watermark to ``position`` (never back: two pulls at once may finish in
        either order) and count ``rows`` more kept rows."""
        current = self.conn.execute(
            select(W).where(W.c.source == source, W.c.target == target).with_for_update()
        ).first()
        if current is None:
            self.conn.execute(
                W.insert().values(
                    source=source,
                    target=target,
                    location=location,
                    position=position,
                    rows=rows,
                    updated_at=now,
                )
            )
        else:
            self.conn.execute(
                update(W)
                .where(W.c.source == source, W.c.target == target)
                .values(
                    location=location,
                    position=max(position, current.position),
                    rows=current.rows + rows,
                    updated_at=now,
                )
            )
        found = self.get(source, target)
        assert found is not None
        return found

    def all(self) -> list[Watermark]:
        return [
            Watermark(**r._mapping)
            for r in self.conn.execute(select(W).order_by(W.c.source, W.c.location))
        ]
