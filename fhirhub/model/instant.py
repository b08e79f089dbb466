"""FHIR instants as integers of microseconds since the Unix epoch (UTC), and back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fhirhub.errors import bad_request

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


# The last second each format was asked for, and its text: most calls (every stored version,
# every response's Last-Modified, every audited read) fall in the second before them.
_last_instant: tuple[int, str] = (0, "1970-01-01T00:00:00")
_last_http: tuple[int, str] = (0, "Thu, 01 Jan 1970 00:00:00 GMT")


def to_instant(us: int) -> str:
    """``2026-11-28T12:25:01.123456Z``: every digit we store, so a client can page exactly."""
    global _last_instant
    second, fraction = divmod(us, 1_000_000)
    last = _last_instant
    if last[0] != second:
        dt = _EPOCH + timedelta(seconds=second)
        last = _last_instant = (second, dt.strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{last[1]}.{fraction:06d}Z"


def to_http_date(us: int) -> str:
    global _last_http
    second = us // 1_000_000
    last = _last_http
    if last[0] != second:
        dt = _EPOCH + timedelta(seconds=second)
        last = _last_http = (second, dt.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    return last[1]


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
