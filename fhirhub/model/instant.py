"""FHIR instants as integers of microseconds since the Unix epoch (UTC), and back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fhirhub.errors import bad_request

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


def to_instant(us: int) -> str:
    """``2026-11-28T12:25:01.123456Z``: every digit we store, so a client can page exactly."""
    dt = _EPOCH + timedelta(microseconds=us)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_http_date(us: int) -> str:
    dt = _EPOCH + timedelta(microseconds=us)
    return dt.strftime("%a, %d %b %Y %H:%M:%S GMT")


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
