"""Ground truth: records map to persons, NIKs are built as NIKs are, indicator figures hang
together, and the rule helpers read INDICATORS.md literally."""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import orjson

from fhirhub.synth.generate import SynthCity
from fhirhub.synth.truth import epi_week, epi_weeks, in_range


def test_every_record_maps_to_a_generated_person(small_city_dir: Path, small_city: SynthCity):
    with (small_city_dir / "truth" / "persons.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    pids = {p.pid for p in small_city.persons}
    assert rows and all(int(r["person_id"]) in pids for r in rows)
    keys = [(r["system"], r["value"]) for r in rows]
    assert len(keys) == len(set(keys)), "a record identifier names one record"
    assert {r["source"] for r in rows} == {"puskesmas", "rsud", "bpjs", "satusehat"}
    assert any(r["record"] == "newborn" for r in rows)


def test_niks_follow_the_dukcapil_structure(small_city: SynthCity) -> None:
    for p in small_city.persons:
        assert p.nik is not None and re.fullmatch(r"\d{16}", p.nik)
        dd, mm, yy = int(p.nik[6:8]), int(p.nik[8:10]), int(p.nik[10:12])
        if p.moved_in is None:
            assert dd - (40 if p.sex == "female" else 0) == p.birth.day
            assert (mm, yy) == (p.birth.month, p.birth.year % 100)
    niks = [p.nik for p in small_city.persons]
    assert len(niks) == len(set(niks))


def test_hard_cases_are_present() -> None:
    from fhirhub.synth.generate import build

    sc = build(3000, 5)
    twins = [p for p in sc.persons if p.multiple_birth]
    assert twins, "twins"
    same_name = [
        p for p in sc.persons if p.father is not None and sc.persons[p.father].name == p.name
    ]
    assert same_name, "parent and child of the same name"
    errors = {e for r in sc.records.values() for e in r.errors}
    assert {
        "ode_joined",
        "old_spelling",
        "typo",
        "nik_missing",
        "newborn_as_mother",
        "honorific",
        "prefix_dropped",
    } <= errors


def test_indicator_strata_add_up(small_city_dir: Path) -> None:
    data = orjson.loads((small_city_dir / "truth" / "indicators.json").read_bytes())
    ind = data["indicators"]
    assert {"spm-01", "spm-06", "spm-12", "imm-01", "nut-01", "morb-01", "dq-01"} <= set(ind)
    for iid in ("spm-05", "spm-06", "spm-12"):
        city = ind[iid]["city"]["7472"]
        for level in ("puskesmas", "kelurahan", "sex", "age-group"):
            for pop in ("numerator", "initial-population"):
                assert sum(s.get(pop, 0) for s in ind[iid][level].values()) == city[pop]
        assert city["numerator"] <= city["initial-population"]


def test_icd10_ranges_and_epi_weeks() -> None:
    assert in_range("I10", "I10", "I15") and in_range("I15.0", "I10", "I15")
    assert not in_range("I20.0", "I10", "I15")
    assert in_range("Z00.1", "Z00.0", "Z00.3") and not in_range("Z00.8", "Z00.0", "Z00.3")
    # MMWR: week 1 is the first Sunday–Saturday week with at least four days in the year
    assert epi_week(date(2025, 1, 1)) == (2025, 1)  # week of 29 Dec 2024 – 4 Jan 2025
    assert epi_week(date(2026, 1, 3)) == (2025, 53)
    assert epi_week(date(2026, 1, 4)) == (2026, 1)
    assert len(epi_weeks(date(2025, 1, 1), date(2025, 12, 31))) == 53
