"""FHIR instants as integers of microseconds since the Unix epoch (UTC), and back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fhirhub.errors import bad_request

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


class _PerSecond:
    """A format's text of a second since the epoch, remembered for the last second asked
    for: most calls (every stored version, every response's Last-Modified, every audited read)
    fall in the second of the one before."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.last: tuple[int | None, str] = (None, "")

    def __call__(self, second: int) -> str:
        last = self.last
        if last[0] != second:
            last = self.last = (second, (_EPOCH + timedelta(seconds=second)).strftime(self.fmt))
        return last[1]


_INSTANT_SECOND = _PerSecond("%Y-%m-%dT%H:%M:%S")
_HTTP_DATE = _PerSecond("%a, %d %b %Y %H:%M:%S GMT")


def to_instant(us: int) -> str:
    """``2026-11-28T12:25:01.123456Z``: every digit we store, so a client can page exactly."""
    second, fraction = divmod(us, 1_000_000)
    return f"{_INSTANT_SECOND(second)}.{fraction:06d}Z"


def to_http_date(us: int) -> str:
    return _HTTP_DATE(us // 1_000_000)


def parse_instant(value: str, name: str) -> int:
    """An instant with a time zone (as ``_since`` takes), as µs since the epoch."""
    try:
        dt = datetime.fromisoformat(value.replace(" ", "+"))  # '+' arrives as ' ' if unescaped
    except ValueError:
        raise bad_request(f"{name}: '{value}' is not a FHIR instant", name) from None
    if dt.tzinfo is None:
        raise bad_request(f"{name}: '{value}' needs a time zone", name)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
