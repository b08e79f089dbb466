"""Property tests of the small parsers the indicators rest on: ICD-10 ranges, report dates,
WITA dates of instants and MMWR epi weeks (each against an independent reading)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirhub.errors import FhirError
from fhirhub.services.measures.codes import bounds, icd_set, within
from fhirhub.services.measures.period import (
    DAY_START,
    MAX_PERIOD_DAYS,
    Period,
    epi_week,
    epi_weeks,
    local_date,
    local_moment,
    parse_date,
    parse_period,
)
from fhirhub.synth import truth

letters = st.sampled_from("AEFIOZ")
category = st.builds(lambda c, n: f"{c}{n:02d}", letters, st.integers(0, 99))
code = st.one_of(
    category, st.builds(lambda c, d: f"{c}.{d}", category, st.integers(0, 99).map(str))
)


@given(code, category, category)
def test_category_ranges_agree_with_the_truth(c: str, a: str, b: str) -> None:
    lo, hi = min(a, b), max(a, b)
    assert icd_set(f"{lo}-{hi}").holds(c) == truth.in_range(c, lo, hi)


@given(code, category, st.integers(0, 9), st.integers(0, 9))
def test_dotted_ranges_agree_with_the_truth(c: str, cat: str, x: int, y: int) -> None:
    lo, hi = f"{cat}.{min(x, y)}", f"{cat}.{max(x, y)}"
    assert icd_set(f"{lo}-{hi}").holds(c) == truth.in_range(c, lo, hi)


def test_a_code_holds_its_sub_codes() -> None:
    s = icd_set("Z10, Z03.0, I10-I15")
    assert s.holds("Z10") and s.holds("Z10.1") and s.holds("Z03.0") and s.holds("I15.9")
    assert not s.holds("Z03.1") and not s.holds("I16") and not s.holds("Z11")


@given(st.integers(0, 120), st.integers(0, 120), st.integers(0, 120))
def test_bounds(v: int, a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    assert within(v, bounds(f"{lo}-{hi}")) == (lo <= v <= hi)
    assert within(v, bounds(f"{lo}-")) == (v >= lo)


@given(st.dates(date(1990, 1, 1), date(2040, 12, 31)))
def test_epi_weeks_agree_with_the_truth(d: date) -> None:
    assert epi_week(d) == truth.epi_week(d)


@given(st.dates(date(2000, 1, 1), date(2035, 12, 31)), st.integers(0, 800))
def test_epi_weeks_of_a_period_are_consecutive_sunday_weeks(start: date, days: int) -> None:
    weeks = epi_weeks(Period(start, start + timedelta(days=days)))
    assert weeks[0] == epi_week(start) and weeks[-1] == epi_week(start + timedelta(days=days))
    for a, b in itertools.pairwise(weeks):
        assert b == (a[0], a[1] + 1) or (b[1] == 1 and b[0] == a[0] + 1)


@given(st.dates(date(1900, 1, 1), date(2100, 12, 31)))
def test_parse_date_round_trip(d: date) -> None:
    text = d.isoformat()
    assert parse_date(text, "periodStart", end=False) == d
    assert parse_date(text[:7], "periodStart", end=False) == d.replace(day=1)
    last = parse_date(text[:7], "periodEnd", end=True)
    assert last.month == d.month and (last + timedelta(days=1)).day == 1
    assert parse_date(text[:4], "periodEnd", end=True) == date(d.year, 12, 31)


@given(st.text(max_size=20))
def test_a_bad_date_is_a_400_naming_the_parameter(text: str) -> None:
    try:
        parse_date(text, "periodStart", end=False)
    except FhirError as err:
        assert err.status == 400
        assert err.issues[0].expression == ("periodStart",)


@given(st.dates(date(2000, 1, 1), date(2030, 1, 1)), st.integers(0, 4000))
def test_periods(start: date, days: int) -> None:
    end = start + timedelta(days=days)
    if days + 1 > MAX_PERIOD_DAYS:
        with pytest.raises(FhirError) as err:
            parse_period(start.isoformat(), end.isoformat())
        assert err.value.issues[0].code == "too-costly"
    else:
        assert parse_period(start.isoformat(), end.isoformat()) == Period(start, end)


@given(
    st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1)),
    st.integers(-12, 14).map(lambda h: timezone(timedelta(hours=h))),
)
def test_local_dates_are_wita(dt: datetime, tz: timezone) -> None:
    aware = dt.replace(tzinfo=tz, microsecond=0)
    expected = aware.astimezone(timezone(timedelta(hours=8))).date()
    assert local_date(aware.isoformat()) == expected
    assert local_date(aware.astimezone(UTC).isoformat().replace("+00:00", "Z")) == expected
    assert local_date(dt.date().isoformat()) == dt.date()


@given(
    st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1)),
    st.integers(-12, 14).map(lambda h: timezone(timedelta(hours=h))),
    st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1)),
)
def test_local_moments_order_instants(dt: datetime, tz: timezone, other: datetime) -> None:
    wita = timezone(timedelta(hours=8))
    aware = dt.replace(tzinfo=tz)
    day, key = local_moment(aware.isoformat()) or (None, None)
    assert day == aware.astimezone(wita).date() == local_date(aware.isoformat())
    assert local_moment(aware.isoformat().replace("+00:00", "Z")) == (day, key)
    # a dateTime without a zone is WITA
    naive_day, naive_key = local_moment(other.isoformat()) or (None, None)
    assert naive_day == other.date()
    assert (key < naive_key) == (aware < other.replace(tzinfo=wita))
    assert (key == naive_key) == (aware == other.replace(tzinfo=wita))
    assert local_moment(dt.date().isoformat()) == (dt.date(), DAY_START)
    assert min(key, naive_key) > DAY_START


@given(st.text(max_size=30))
def test_local_moment_refuses_what_local_date_refuses(text: str) -> None:
    found = local_moment(text)
    assert (found is None) == (local_date(text) is None)
    if found is not None:
        assert found[0] == local_date(text)
