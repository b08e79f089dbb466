"""The ground-truth rules on hand-made persons: each case sits on a boundary of INDICATORS.md."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from fhirhub.synth.city import load_city
from fhirhub.synth.generate import SynthCity
from fhirhub.synth.growth import z_to_length
from fhirhub.synth.model import Encounter, Person
from fhirhub.synth.population import Population
from fhirhub.synth.truth import compute

KEL = "7472011007"  # Katobengke, working area of PKM01


def person(pid: int, sex: str, birth: date, **kw) -> Person:
    return Person(
        pid=pid,
        household=pid,
        sex=sex,
        birth=birth,
        prefix="",
        given="Uji",
        family="",
        group="muslim",
        kelurahan=KEL,
        street="Jl. Uji",
        rt="001",
        rw="001",
        phone=None,
        nik=None,
        nik_issued=None,
        bpjs=None,
        **kw,
    )


def enc(d: date, dx: tuple[str, ...], obs=None, imm=None, fac: str = "PKM01") -> Encounter:
    t = datetime.combine(d, datetime.min.time()) + timedelta(hours=9)
    return Encounter(t, t + timedelta(minutes=30), fac, "AMB", "test", dx, obs or [], imm or [])


def city_of(persons: list[Person]) -> dict:
    pop = Population(persons=persons, window_start=date(2024, 1, 1), today=date(2026, 10, 31))
    sc = SynthCity(load_city(), pop, 1, date(2026, 10, 31), (date(2025, 1, 1), date(2025, 12, 31)))
    return compute(sc)["indicators"]


def city(ind: dict, iid: str) -> dict:
    return ind[iid]["city"]["7472"]


def anc_mother(pid: int, weeks: list[int], end: date) -> Person:
    start = end - timedelta(days=280)
    p = person(pid, "female", date(1995, 5, 5))
    p.events = [enc(start + timedelta(weeks=w, days=2), ("Z34.8",)) for w in weeks]
    p.events.append(enc(end, ("O80", "Z37.0")))
    return p


def test_spm01_needs_six_contacts_spread_over_the_trimesters() -> None:
    end = date(2025, 6, 30)
    ok = anc_mother(1, [8, 15, 20, 29, 33, 37], end)
    too_few_late = anc_mother(2, [8, 10, 15, 20, 29, 33], end)  # only 2 from week 28
    ind = city_of([ok, too_few_late])
    assert city(ind, "spm-01") == {"initial-population": 2, "numerator": 1}
    assert city(ind, "spm-02") == {"initial-population": 2, "numerator": 2}


def test_imm01_hb0_counts_only_by_day_seven() -> None:
    birth = date(2024, 3, 1)
    full = [
        ("19", 1),
        ("02", 1),
        ("02", 2),
        ("02", 3),
        ("02", 4),
        ("198", 1),
        ("198", 2),
        ("198", 3),
        ("10", 1),
        ("04", 1),
    ]

    def child(pid: int, hb0_day: int) -> Person:
        c = person(pid, "male", birth)
        c.events = [
            enc(birth + timedelta(days=hb0_day), ("Z27.8",), imm=[("08", 1)]),
            enc(birth + timedelta(days=300), ("Z27.8",), imm=full),
        ]
        return c

    ind = city_of([child(1, 7), child(2, 8)])
    assert city(ind, "imm-01") == {"initial-population": 2, "numerator": 1}
    assert city(ind, "imm-02") == {"initial-population": 2, "numerator": 2}


def test_spm11_test_within_thirty_days_of_first_presumption() -> None:
    d = date(2025, 4, 1)
    a = person(1, "male", date(1980, 1, 1))
    a.events = [enc(d, ("Z03.0",)), enc(d + timedelta(days=30), ("Z03.0",), [("88517-1", 0.0, "")])]
    b = person(2, "male", date(1980, 1, 1))
    b.events = [enc(d, ("Z03.0",)), enc(d + timedelta(days=31), ("Z03.0",), [("88517-1", 0.0, "")])]
    c = person(3, "male", date(1980, 1, 1))  # presumed first in 2024: not in the 2025 group
    c.events = [enc(date(2024, 12, 1), ("Z03.0",)), enc(d, ("A15.0",))]
    ind = city_of([a, b, c])
    assert city(ind, "spm-11")["denominator"] == 2
    assert city(ind, "spm-11")["numerator"] == 1


def test_nut01_uses_the_latest_length_in_the_period() -> None:
    birth = date(2023, 6, 1)
    first, last = date(2025, 2, 10), date(2025, 8, 10)
    age1, age2 = (first - birth).days, (last - birth).days
    stunted_then_not = person(1, "female", birth)
    stunted_then_not.events = [
        enc(first, ("Z00.1",), [("8306-3", round(z_to_length(-2.6, age1, "female"), 1), "cm")]),
        enc(last, ("Z00.1",), [("8302-2", round(z_to_length(-1.0, age2, "female"), 1), "cm")]),
    ]
    stunted = person(2, "male", birth)
    stunted.events = [
        enc(last, ("Z00.1",), [("8302-2", round(z_to_length(-2.6, age2, "male"), 1), "cm")]),
    ]
    ind = city_of([stunted_then_not, stunted])
    assert city(ind, "nut-01")["denominator"] == 2
    assert city(ind, "nut-01")["numerator"] == 1


def test_spm08_denominator_needs_a_diagnosis_by_period_end() -> None:
    a = person(1, "female", date(1960, 1, 1))
    a.events = [
        enc(date(2024, 5, 1), ("I10",)),
        enc(date(2025, 5, 1), ("K29.7",), [("85354-9", 150, "mm[Hg]"), ("_dia", 95, "mm[Hg]")]),
    ]
    b = person(2, "female", date(1960, 1, 1))
    b.events = [enc(date(2026, 2, 1), ("I10",))]  # diagnosed after the period
    ind = city_of([a, b])
    assert city(ind, "spm-08") == {
        "denominator": 1,
        "initial-population": 1,
        "numerator": 1,
        "score": 1.0,
    }


def test_people_dead_before_the_period_are_left_out() -> None:
    a = person(1, "male", date(1950, 1, 1), death=date(2024, 12, 31))
    a.events = [enc(date(2024, 3, 1), ("I10",))]
    ind = city_of([a])
    assert "spm-08" not in ind
