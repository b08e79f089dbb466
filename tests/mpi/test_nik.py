"""NIK structure and plausibility against a record."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirhub.mpi.nik import conflicts, parse_nik


def test_a_baubau_womans_nik_is_taken_apart() -> None:
    nik = parse_nik("7472014501900001")
    assert nik is not None
    assert (nik.province, nik.regency, nik.district) == ("74", "7472", "747201")
    assert (nik.day, nik.month, nik.year2, nik.sex, nik.serial) == (5, 1, 90, "female", 1)
    assert nik.birth_dates() == [date(1990, 1, 5)]


def test_a_mans_day_is_as_born() -> None:
    nik = parse_nik("7472011203150042")
    assert nik is not None and nik.sex == "male" and nik.day == 12
    assert nik.birth_dates(date(2026, 12, 6)) == [date(1915, 3, 12), date(2015, 3, 12)]
    assert nik.birth_dates(date(2015, 3, 11)) == [date(1915, 3, 12)]  # not born yet in 2015


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("747201450190000", "15 digits"),
        ("74720145019000011", "17 digits"),
        ("747201450190000A", "a letter"),
        ("9972014501900001", "no province 99"),
        ("7472013201900001", "day 32"),
        ("7472017201900001", "day 72 (32 for a woman)"),
        ("7472010001900001", "day 0"),
        ("7472014500900001", "day 40 (0 for a woman)"),
        ("7472011513900001", "month 13"),
        ("7472013002900001", "30 February"),
        ("7472012902010001", "29 February 1901 and 2001"),
        ("7472014501900000", "sequence 0000"),
    ],
)
def test_impossible_niks_are_refused(value: str, why: str) -> None:
    assert parse_nik(value) is None, why


def test_29_february_in_a_leap_year_of_one_century_only() -> None:
    nik = parse_nik("7472012902000001")  # 1900 was not a leap year, 2000 was
    assert nik is not None and nik.birth_dates() == [date(2000, 2, 29)]


def test_a_record_that_agrees_has_no_conflicts() -> None:
    nik = parse_nik("7472014501900001")
    assert nik is not None
    assert conflicts(nik, date(1990, 1, 5), "female") == []
    assert conflicts(nik, None, "unknown") == []


def test_a_childs_birth_date_and_a_mans_gender_conflict_with_a_mothers_nik() -> None:
    nik = parse_nik("7472014501900001")
    assert nik is not None
    assert conflicts(nik, date(2024, 6, 1), "male") == ["birthDate", "gender"]


@given(
    province=st.sampled_from(["74", "11", "96"]),
    born=st.dates(min_value=date(1900, 1, 1), max_value=date.today()),
    female=st.booleans(),
    serial=st.integers(1, 9999),
)
def test_every_nik_built_from_a_record_parses_back_to_it(
    province: str, born: date, female: bool, serial: int
) -> None:
    day = born.day + (40 if female else 0)
    value = f"{province}7201{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}"
    nik = parse_nik(value)
    assert nik is not None
    assert born in nik.birth_dates()
    assert conflicts(nik, born, "female" if female else "male") == []


@given(st.text(max_size=20))
def test_parsing_never_raises(value: str) -> None:
    parse_nik(value)
