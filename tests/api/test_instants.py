"""Instants and HTTP dates are formatted from a remembered second; they must equal the plain
datetime formatting for any instant, in any order of calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fhirhub.model.instant import parse_instant, to_http_date, to_instant

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = st.integers(min_value=-(10**15), max_value=253_402_300_799_999_999)  # to 9999-12-31


def _plain(us: int) -> tuple[str, str]:
    dt = _EPOCH + timedelta(microseconds=us)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), dt.strftime("%a, %d %b %Y %H:%M:%S GMT")


@given(st.lists(_US, max_size=10), st.lists(st.integers(-3_000_000, 3_000_000), max_size=10))
def test_formats_equal_datetime_in_any_order(values: list[int], offsets: list[int]) -> None:
    base = 1_764_000_000_000_000
    near = [base + o for o in offsets]  # calls within and across a few seconds
    for us in [*values, *near, base, base + 999_999, base + 1_000_000, *values]:
        assert (to_instant(us), to_http_date(us)) == _plain(us)


@given(_US.filter(lambda us: us >= 0))
def test_instant_round_trips(us: int) -> None:
    assert parse_instant(to_instant(us), "_since") == us
