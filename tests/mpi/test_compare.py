"""Comparison levels of a pair of records (fhirhub.mpi.compare)."""

from __future__ import annotations

from datetime import date

from hypothesis import example, given
from hypothesis import strategies as st
from mpi_factories import rec

from fhirhub.mpi.compare import (
    MISSING,
    compare,
    compare_code,
    compare_dates,
    compare_nik,
    name_level,
)
from fhirhub.mpi.names import parse_name


def level(a: str, b: str) -> int:
    return name_level(parse_name(a), parse_name(b))[0]


def test_name_levels():
    assert level("Wa Ode Siti Aminah", "SITI AMINAH, NY") == 0  # prefix and title ignored
    assert level("Soekarno", "Sukarno") == 0  # old spelling
    assert level("Siti", "Siti Aminah") == 1  # subset: a single name expanded
    assert level("Siti Aminah", "Siti Aminaj") == 2  # a typo
    assert level("Siti", "Stii") == 2  # one transposition in a short name (Jaro-Winkler 0.83)
    assert level("Ina", "Ini") == 2
    assert level("Muhammad Rizky", "Muhammad Rizal") == 3  # one token shared
    assert level("Jackson Shevchenko", "Jackson Meddings-Blaskett") == 3
    assert level("Rizky Amin", "Rizal Amir") == 4  # nothing shared, Jaro-Winkler >= 0.8
    assert level("Siti Aminah", "Budi Santoso") == 5


def test_placeholder_names_are_not_compared_with_real_names():
    baby, named = rec("By. Ny. Siti"), rec("Ahmad")
    assert compare(baby, named).level("name") == MISSING
    assert compare(baby, rec("Bayi Ny Siti")).level("name") == 0  # both name the mother


def test_birth_date_levels():
    d = date(1990, 8, 5)
    assert compare_dates(d, d) == 0
    assert compare_dates(d, date(1990, 5, 8)) == 1  # day and month swapped
    assert compare_dates(d, date(1990, 8, 6)) == 1  # one field off
    assert compare_dates(d, date(1990, 9, 5)) == 1
    assert compare_dates(d, date(1980, 8, 5)) == 1  # a one-digit year typo
    assert compare_dates(d, date(1991, 8, 5)) == 2  # year one off
    assert compare_dates(d, date(1975, 1, 1)) == 4
    assert compare_dates(d, date(1990, 1, 1)) == 3  # "born 1990", day unknown
    assert compare_dates(date(1957, 7, 1), date(1957, 12, 22)) == 3
    assert compare_dates(date(1957, 7, 2), date(1957, 12, 22)) == 4
    assert compare_dates(d, None) == MISSING


def test_nik_levels():
    a = "7472014508900001"
    assert compare_nik(a, a) == 0
    assert compare_nik(a, "7472014508900002") == 1  # one digit changed
    assert compare_nik(a, "7472014580900001") == 1  # two adjacent digits swapped
    assert compare_nik(a, "7472015508910007") == 2
    assert compare_nik(a, None) == MISSING


def test_phone_kelurahan_gender_bpjs_levels():
    a = rec(bpjs="0000001234567")
    c = compare(a, rec(phones=frozenset(), rt="4", gender="male", bpjs="0000001234568"))
    assert c.named() == {
        "name": "exact",
        "birth_date": "exact",
        "nik": "same",
        "phone": "missing",
        "kelurahan": "same",
        "bpjs": "different",
        "ihs": "missing",
        "gender": "different",
        "other_id": "missing",
        "postcode": "missing",
        "locality": "missing",
        "street": "missing",
    }
    assert compare(a, rec(kelurahan="7472011002")).level("kelurahan") == 2
    assert compare(a, a).level("kelurahan") == 0


@given(st.dates(), st.dates())
def test_date_levels_are_symmetric(a, b):
    assert compare_dates(a, b) == compare_dates(b, a)


@given(st.from_regex(r"\d{16}", fullmatch=True), st.from_regex(r"\d{16}", fullmatch=True))
def test_nik_levels_are_symmetric(a, b):
    assert compare_nik(a, b) == compare_nik(b, a)
    assert (compare_nik(a, b) == 0) == (a == b)


def test_street_levels_keep_house_numbers_apart():
    from fhirhub.mpi.compare import compare_street
    from fhirhub.mpi.features import address_text as t

    assert compare_street(t("56 Emilybulcock Crescent"), t("56 emily bulcock crescent")) == 0
    assert compare_street(t("7 dixonddrive jestarlei"), t("7 Dixon Drive, Jestarlei")) == 1
    assert compare_street(t("37 elensra"), t("37 port jackson circuit elenera")) == 1
    assert compare_street(t("Jl. Betoambari No. 91"), t("Jl. Betoambari No. 19")) == 2
    assert compare_street(t("15 lawley street"), t("80 dampier crescent")) == 3
    assert compare_street(None, "X") == MISSING


def test_other_identifiers_postcode_and_town():
    from fhirhub.mpi.compare import compare_code, compare_other_ids, compare_text

    ssn, passport = "urn:ssn", "urn:passport"
    assert compare_other_ids(((ssn, "1234567"),), ((ssn, "1234567"),)) == 0
    assert compare_other_ids(((ssn, "1234567"),), ((ssn, "1243567"),)) == 1  # two swapped
    assert compare_other_ids(((ssn, "1234567"),), ((ssn, "7654321"),)) == 2
    assert compare_other_ids(((ssn, "1234567"),), ((passport, "1234567"),)) == MISSING
    assert compare_other_ids((), ((ssn, "1"),)) == MISSING
    assert [compare_code("2484", x) for x in ("2484", "2448", "2485", "3000")] == [0, 1, 1, 2]
    assert compare_text("PENRITH", "PEN RITH") == 1 and compare_text("A", "B") == 2


def test_a_name_word_split_in_two_is_joined():
    assert level("Nur Hayati", "Nurhayati") == 0
    assert level("Abdul Rahman", "Abdulrahman Saleh") == 1
    assert level("Madel Ine", "Madelne Birchby") == 2


streets = st.text(alphabet="ab 12", max_size=12)


@given(streets, streets)
@example("1 1 2", "2 2 2")  # equal word counts: each way must give the same similarity
def test_street_levels_are_symmetric_and_equal_is_same(a, b):
    from fhirhub.mpi.compare import compare_street
    from fhirhub.mpi.features import address_text

    a, b = address_text(a) or None, address_text(b) or None
    assert compare_street(a, b) == compare_street(b, a)
    if a is not None:
        assert compare_street(a, a) == 0


name_words = st.lists(
    st.sampled_from(["SITI", "STII", "SIT", "AMINAH", "AMINA", "LA", "ODE"]), max_size=4
)


@given(name_words, name_words)
@example(["SITI", "SITI", "AMINA"], ["AMINAH", "AMINAH", "SIT"])
def test_name_levels_are_symmetric(a, b):
    from fhirhub.mpi.compare import name_level
    from fhirhub.mpi.names import parse_name

    one, two = parse_name(" ".join(a)), parse_name(" ".join(b))
    assert name_level(one, two) == name_level(two, one)


def _one_change_or_swap(a: str, b: str) -> bool:
    """The definition: one position changed, or two adjacent positions swapped."""
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diff) == 1:
        return True
    return (
        len(diff) == 2
        and diff[1] == diff[0] + 1
        and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]])
    )


@given(st.text("0123", min_size=0, max_size=6), st.text("0123", min_size=0, max_size=6))
def test_a_nik_one_typo_apart_is_one_digit_changed_or_two_adjacent_swapped(a: str, b: str):
    expected = 0 if a == b else 1 if _one_change_or_swap(a, b) else 2
    assert compare_nik(a, b) == expected
    assert compare_code(a, b) == expected
