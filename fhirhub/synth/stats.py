"""The city's figures for `fhirhub synth --stats`, and the ranges the tests hold them to."""

from __future__ import annotations

from collections import Counter
from datetime import date

from .errors import RATES
from .generate import SynthCity
from .truth import age_years, compute

# Documented ranges (docs/synth.md); tests/synth/test_stats.py holds a generated city to them.
RANGES = {
    "pyramid.0-14": (0.24, 0.33),
    "pyramid.15-64": (0.60, 0.70),
    "pyramid.65+": (0.03, 0.08),
    "birth_rate_per_1000": (13.0, 24.0),
    "death_rate_per_1000": (2.0, 8.0),
    "households.mean_size": (3.0, 4.8),
    "bpjs_share": (0.84, 0.92),
    "coverage.spm-01": (0.45, 0.80),
    "coverage.spm-03": (0.65, 0.90),
    "coverage.spm-05": (0.55, 0.85),
    "coverage.imm-01": (0.55, 0.90),
    "coverage.imm-02": (0.70, 0.97),
    "prevalence.stunting": (0.20, 0.33),
    "prevalence.wasting": (0.03, 0.12),
    "prevalence.underweight": (0.08, 0.22),
    "prevalence.hypertension_15+": (0.06, 0.20),
    "prevalence.diabetes_15+": (0.015, 0.07),
    "records_per_person": (1.5, 4.5),
    # observed shares of all Puskesmas/RSUD records (a rate applies only where it can)
    "errors.typo": (0.02, 0.06),
    "errors.nik_missing": (0.03, 0.12),
    "errors.ode_joined": (0.002, 0.04),
    "errors.day_month_swapped": (0.002, 0.015),
    "errors.phone_missing": (0.10, 0.25),
}


def figures(sc: SynthCity) -> dict:
    ps, pe = sc.period
    mid = date(ps.year, 7, 1)
    alive_mid = [
        p
        for p in sc.persons
        if p.birth <= mid
        and (p.death is None or p.death >= mid)
        and (p.moved_in is None or p.moved_in <= mid)
        and (p.moved_out is None or p.moved_out > mid)
    ]
    n = len(alive_mid)
    bands: Counter[str] = Counter()
    pyr: Counter[str] = Counter()
    for p in alive_mid:
        a = age_years(p.birth, mid)
        b = min(a // 5 * 5, 75)
        bands[f"{b:02d}-{b + 4:02d}" if b < 75 else "75+"] += 1
        pyr["0-14" if a < 15 else ("15-64" if a < 65 else "65+")] += 1
    births = sum(1 for p in sc.persons if ps <= p.birth <= pe)
    deaths = sum(1 for p in sc.persons if p.death is not None and ps <= p.death <= pe)
    hh = Counter(p.household for p in alive_mid)
    truth = compute(sc)["indicators"]

    def score(iid: str, group: str = "") -> float:
        if iid not in truth:
            return 0.0
        c = truth[iid]["city"]["7472"]
        pre = f"{group}/" if group else ""
        den = c.get(pre + "denominator") or c.get("initial-population") or 0
        return round(c.get(pre + "numerator", 0) / den, 4) if den else 0.0

    adults = [p for p in alive_mid if age_years(p.birth, mid) >= 15]
    ht = sum(1 for p in adults if any(c.startswith("I1") for e in p.events for c in e.dx))
    dm = sum(1 for p in adults if any(c.startswith("E11") for e in p.events for c in e.dx))
    # records and errors
    recs = list(sc.records.values())
    err: Counter[str] = Counter()
    for r in recs:
        err.update(r.errors)
    clinical = [r for r in recs if not r.newborn]
    per_person: Counter[int] = Counter(r.pid for r in recs)
    for pid in sc.bpjs_records:
        per_person[pid] += 1
    for pid in sc.ss_records:
        per_person[pid] += 1
    dist = Counter(min(v, 6) for v in per_person.values())
    with_records = len(per_person)
    out = {
        "persons": {
            "total_generated": len(sc.persons),
            "alive_mid_period": n,
            "households": len(hh),
        },
        "pyramid": {k: round(v / n, 4) for k, v in sorted(pyr.items())},
        "age_bands": {k: round(v / n, 4) for k, v in sorted(bands.items())},
        "birth_rate_per_1000": round(1000 * births / n, 2),
        "death_rate_per_1000": round(1000 * deaths / n, 2),
        "households.mean_size": round(n / len(hh), 2),
        "bpjs_share": round(sum(1 for p in alive_mid if p.bpjs) / n, 4),
        "coverage": {
            iid: score(iid)
            for iid in (
                "spm-01",
                "spm-03",
                "spm-04",
                "spm-05",
                "spm-06",
                "spm-07",
                "spm-08",
                "spm-09",
                "spm-10",
                "spm-11",
                "imm-01",
                "imm-02",
            )
        },
        "prevalence": {
            "stunting": score("nut-01"),
            "wasting": score("nut-02", "wasting"),
            "underweight": score("nut-02", "underweight"),
            "hypertension_15+": round(ht / max(1, len(adults)), 4),
            "diabetes_15+": round(dm / max(1, len(adults)), 4),
        },
        "errors": {
            "records": len(clinical),
            "observed": {k: round(err[k] / max(1, len(clinical)), 4) for k in sorted(RATES)},
            "newborn_records": sum(1 for r in recs if r.newborn),
        },
        "duplicates": {
            "persons_with_records": with_records,
            "records_per_person": round(sum(per_person.values()) / max(1, with_records), 3),
            "distribution": {str(k) if k < 6 else "6+": v for k, v in sorted(dist.items())},
        },
        "encounters": sum(len(p.events) for p in sc.persons),
    }
    return out


def flat(fig: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in fig.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                if isinstance(v2, int | float):
                    out[f"{k}.{k2}"] = v2
        elif isinstance(v, int | float):
            out[k] = v
    for k, v in fig["errors"]["observed"].items():
        out[f"errors.{k}"] = v
    out["records_per_person"] = fig["duplicates"]["records_per_person"]
    return out


def out_of_range(fig: dict) -> dict[str, tuple[float, tuple[float, float]]]:
    f = flat(fig)
    return {k: (f[k], r) for k, r in RANGES.items() if not r[0] <= f[k] <= r[1]}
