"""The SQL statements a block of a test runs, as SQLAlchemy sends them to the driver."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def statements_run(target: Any = Engine) -> Iterator[list[str]]:
    """The statements run inside the block, on every engine (or on ``target``'s only)."""
    seen: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(target, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", listen)
