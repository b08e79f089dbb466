"""Ground truth of the indicators of INDICATORS.md, computed by a plain reading of its rules over
the generator's own model (persons, their recorded encounters and true demographics), never over
the emitted FHIR. A perfect server (perfect patient linkage, every local code mapped) must
reproduce these numbers from the emitted records.

Conventions taken where INDICATORS.md leaves room (also in docs/synth.md):
- chronic diagnoses count from their first recorded encounter (the generator emits no
  problem-list Condition predating the window);
- surv-* alerts compare a week with the 4 epi weeks before it, counted with the same rule (days
  outside the period count nothing);
- counts of measurements are counts of Observations.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import orjson

from .generate import SynthCity
from .growth import zscores
from .model import Encounter, Person

BP = {"85354-9", "8480-6"}
GLUCOSE = {"2339-0", "2345-7", "4548-4"}
WEIGHT = "29463-7"
HEIGHT = {"8302-2", "8306-3"}
TB_TEST = {"88517-1", "11545-1", "38379-4"}
HIV_TEST = {"75622-1", "7917-8", "68961-2"}


def in_range(code: str, lo: str, hi: str) -> bool:
    """ICD-10 range test: a range includes every sub-code of its ends."""
    if "." in lo or "." in hi:
        c = code if "." in code else code + ".0"
        return lo <= c[: len(hi)] <= hi or lo <= c <= hi
    return lo <= code[:3] <= hi


def has(e: Encounter, lo: str, hi: str) -> bool:
    return any(in_range(c, lo, hi) for c in e.dx)


def age_years(b: date, on: date) -> int:
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


def age_months(b: date, on: date) -> int:
    return (on.year - b.year) * 12 + on.month - b.month - (on.day < b.day)


def is_resident(p: Person) -> bool:
    k = p.kelurahan
    return len(k) == 10 and k.startswith("7472") and k.isdigit()


def epi_week_start(year: int) -> date:
    jan4 = date(year, 1, 4)
    return jan4 - timedelta(days=(jan4.weekday() + 1) % 7)  # the Sunday on or before 4 January


def epi_week(d: date) -> tuple[int, int]:
    y = d.year
    for year in (y + 1, y, y - 1):
        s = epi_week_start(year)
        if d >= s:
            return year, (d - s).days // 7 + 1
    raise AssertionError(d)


def epi_weeks(ps: date, pe: date) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    d = ps
    while d <= pe:
        w = epi_week(d)
        if not out or out[-1] != w:
            out.append(w)
        d += timedelta(days=1)
    return out


class _Counts:
    """numerator / denominator / initial population per stratum."""

    def __init__(self) -> None:
        self.n: Counter[tuple[str, str, str]] = Counter()

    def add(self, p: Person, pkm: str, band: str, pop: str, yes: bool = True) -> None:
        if not yes:
            return
        for key in (
            ("city", "7472"),
            ("puskesmas", pkm),
            ("kelurahan", p.kelurahan),
            ("sex", p.sex),
            ("age-group", band),
        ):
            self.n[(pop, *key)] += 1


def age_band(age: int) -> str:
    """Five-year band of completed years at the period end (75+ open)."""
    b = min(age // 5 * 5, 75)
    return f"{b}-{b + 4}" if b < 75 else "75+"


def compute(sc: SynthCity) -> dict:
    ps, pe = sc.period
    city = sc.city
    pkm_of = {k: f.code for f in city.puskesmas for k in f.kelurahan}
    ind: dict[str, _Counts] = defaultdict(_Counts)
    groups: dict[str, list[str]] = {
        "nut-02": ["wasting", "underweight"],
        "mor-02": ["neonatal", "infant"],
    }

    def inp(e: Encounter) -> bool:
        return ps <= e.start.date() <= pe

    for p in sc.persons:
        if not is_resident(p):
            continue
        if p.birth > pe or (p.death is not None and p.death < ps):
            continue  # not alive in the period
        pkm = pkm_of[p.kelurahan]
        evs = p.events
        age = age_years(p.birth, pe)
        in_period = [e for e in evs if inp(e)]
        obs_codes: Counter[str] = Counter()
        for e in in_period:
            for o in e.obs:
                obs_codes[o[0]] += 1

        band = age_band(age)

        def add(
            iid: str, pop: str, yes: bool = True, person: Person = p, k: str = pkm, b: str = band
        ) -> None:
            ind[iid].add(person, k, b, pop, yes)

        # spm-01 / spm-02: pregnancies ending in the period
        if p.sex == "female":
            ends = [e for e in in_period if has(e, "O00", "O08") or has(e, "O80", "O84")]
            if ends:
                ok = False
                for end_e in ends:
                    end = end_e.start.date()
                    start = end - timedelta(days=280)
                    weeks = [
                        (e.start.date() - start).days // 7
                        for e in evs
                        if start <= e.start.date() < end and has(e, "Z34", "Z35")
                    ]
                    t1 = sum(1 for w in weeks if w <= 12)
                    t2 = sum(1 for w in weeks if 13 <= w <= 27)
                    t3 = sum(1 for w in weeks if w >= 28)
                    if len(weeks) >= 6 and t1 >= 1 and t2 >= 2 and t3 >= 3:
                        ok = True
                add("spm-01", "initial-population")
                add("spm-01", "numerator", ok)
            deliveries = [e for e in in_period if has(e, "O80", "O84")]
            if deliveries:
                add("spm-02", "initial-population")
                add("spm-02", "numerator", any(e.facility for e in deliveries))
        # spm-03 newborn visits
        if ps <= p.birth <= pe:
            days = set()
            for e in evs:
                if has(e, "Z38", "Z38") or any(c == "Z00.1" for c in e.dx):
                    days.add((e.start.date() - p.birth).days)
            kn = (
                any(0 <= d <= 2 for d in days),
                any(3 <= d <= 7 for d in days),
                any(8 <= d <= 28 for d in days),
            )
            add("spm-03", "initial-population")
            add("spm-03", "numerator", all(kn))
        # spm-04 under-five care
        am = age_months(p.birth, pe)
        if 12 <= am <= 59:
            add("spm-04", "initial-population")
            heights = sum(obs_codes[c] for c in HEIGHT)
            add("spm-04", "numerator", obs_codes[WEIGHT] >= 8 and heights >= 2)
        # spm-05 school age
        if 7 <= age <= 15:
            add("spm-05", "initial-population")
            add(
                "spm-05",
                "numerator",
                any(has(e, "Z00.0", "Z00.3") or has(e, "Z10", "Z10") for e in in_period),
            )
        # spm-06 / spm-07 adult and elderly screening
        three = (
            any(obs_codes[c] for c in BP)
            and any(obs_codes[c] for c in GLUCOSE)
            and obs_codes[WEIGHT] > 0
        )
        if 15 <= age <= 59:
            add("spm-06", "initial-population")
            add("spm-06", "numerator", three)
        if age >= 60:
            add("spm-07", "initial-population")
            add("spm-07", "numerator", three)
        # spm-08 / 09 / 10 chronic care
        for iid, lo, hi, meas, min_age in (
            ("spm-08", "I10", "I15", BP, 15),
            ("spm-09", "E10", "E14", GLUCOSE, 15),
        ):
            if age >= min_age and any(has(e, lo, hi) and e.start.date() <= pe for e in evs):
                add(iid, "denominator")
                add(iid, "initial-population")
                add(iid, "numerator", any(obs_codes[c] for c in meas))
        if any(has(e, "F20", "F29") and e.start.date() <= pe for e in evs):
            add("spm-10", "denominator")
            add("spm-10", "initial-population")
            add("spm-10", "numerator", any(has(e, "F20", "F29") for e in in_period))
        # spm-11 presumptive TB
        tb = [e for e in evs if any(c == "Z03.0" for c in e.dx) or has(e, "A15", "A19")]
        if tb and ps <= tb[0].start.date() <= pe:
            first = tb[0].start.date()
            add("spm-11", "denominator")
            add("spm-11", "initial-population")
            add(
                "spm-11",
                "numerator",
                any(
                    first <= e.start.date() <= first + timedelta(days=30)
                    and any(o[0] in TB_TEST for o in e.obs)
                    for e in evs
                ),
            )
        # spm-12 HIV test
        add("spm-12", "initial-population")
        add("spm-12", "numerator", any(obs_codes[c] for c in HIV_TEST))
        # imm-01 / imm-02
        try:
            bday = p.birth.replace(year=p.birth.year + 1)
        except ValueError:  # 29 February
            bday = date(p.birth.year + 1, 3, 1)
        if ps <= bday <= pe and (p.death is None or p.death >= bday):
            doses: Counter[str] = Counter()
            hb0 = False
            for e in evs:
                if e.start.date() >= bday:
                    continue
                for cvx, _dose in e.imm:
                    doses[cvx] += 1
                    if cvx in ("08", "45") and (e.start.date() - p.birth).days <= 7:
                        hb0 = True
            mr = doses["04"] + doses["05"] >= 1
            full = (
                hb0
                and doses["19"] >= 1
                and doses["02"] + doses["178"] >= 4
                and doses["198"] >= 3
                and doses["10"] >= 1
                and mr
            )
            for iid, yes in (("imm-01", full), ("imm-02", mr)):
                add(iid, "initial-population")
                add(iid, "numerator", yes)
        # nut-01 / nut-02
        if am <= 59:
            _nutrition(p, in_period, add)
        # mor-01 / mor-02
        if p.death is not None and ps <= p.death <= pe:
            d = p.death
            if p.sex == "female":
                preg = any(
                    d - timedelta(days=280) <= e.start.date() <= d
                    and (has(e, "Z34", "Z35") or any(c.startswith("O") for c in e.dx))
                    for e in evs
                )
                post = any(
                    d - timedelta(days=42) <= e.start.date() <= d
                    and (has(e, "O00", "O08") or has(e, "O80", "O84"))
                    for e in evs
                )
                if preg or post:
                    add("mor-01", "numerator")
            age_at_death = (d - p.birth).days
            if age_at_death < 28:
                add("mor-02", "neonatal/numerator")
            if age_at_death < 365:
                add("mor-02", "infant/numerator")
    result: dict = {}
    for iid in sorted(ind):
        result[iid] = _shape(ind[iid], groups.get(iid))
    result.update(_facility_indicators(sc))
    return {
        "period": [ps.isoformat(), pe.isoformat()],
        "conventions": __doc__.split("Conventions", 1)[1].strip() if __doc__ else "",
        "indicators": result,
    }


def _nutrition(p: Person, in_period: list[Encounter], add: Callable[..., None]) -> None:
    latest_h: tuple[date, tuple[float, str]] | None = None
    latest_w: tuple[date, float] | None = None
    latest_pair: tuple[date, float, tuple[float, str]] | None = None
    for e in in_period:
        d = e.start.date()
        w = next((o[1] for o in e.obs if o[0] == WEIGHT), None)
        h = next(((o[1], o[0]) for o in e.obs if o[0] in HEIGHT), None)
        if h is not None:
            latest_h = (d, h)
        if w is not None:
            latest_w = (d, w)
        if h is not None and w is not None:
            latest_pair = (d, w, h)
    if latest_h is not None:
        d, (length, code) = latest_h
        z, _, _ = zscores(p.sex, (d - p.birth).days, None, length, "L" if code == "8306-3" else "H")
        add("nut-01", "denominator")
        add("nut-01", "initial-population")
        add("nut-01", "numerator", z is not None and z < -2)
    if latest_pair is not None:
        d, weight, (length, code) = latest_pair
        _, _, z = zscores(
            p.sex, (d - p.birth).days, weight, length, "L" if code == "8306-3" else "H"
        )
        add("nut-02", "wasting/denominator")
        add("nut-02", "wasting/numerator", z is not None and z < -2)
    if latest_w is not None:
        d, weight = latest_w
        _, z, _ = zscores(p.sex, (d - p.birth).days, weight, None, "L")
        add("nut-02", "underweight/denominator")
        add("nut-02", "underweight/numerator", z is not None and z < -2)


def _shape(c: _Counts, group_names: list[str] | None) -> dict:
    out: dict = {}
    for (pop, level, key), n in sorted(c.n.items()):
        out.setdefault(level, {}).setdefault(key, {})[pop] = n
    for level in out.values():
        for key, pops in level.items():
            for g in group_names or [""]:
                pre = f"{g}/" if g else ""
                num = pops.get(pre + "numerator", 0)
                pops.setdefault(pre + "numerator", num)
                den = pops.get(pre + "denominator")
                if den:
                    pops[pre + "score"] = round(num / den, 6)
            level[key] = dict(sorted(pops.items()))
    return out


def _facility_indicators(sc: SynthCity) -> dict:
    ps, pe = sc.period
    weeks = epi_weeks(ps, pe)
    morb: dict[str, Counter[str]] = defaultdict(Counter)
    surv: dict[str, dict[str, Counter[tuple[int, int]]]] = {
        "surv-01": defaultdict(Counter),
        "surv-02": defaultdict(Counter),
    }
    seen: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for p in sc.persons:
        for e in p.events:
            d = e.start.date()
            if not ps <= d <= pe:
                continue
            if e.dx:
                morb[e.facility][e.dx[0][:3]] += 1
            w = epi_week(d)
            if has(e, "A00", "A09"):
                surv["surv-01"][e.facility][w] += 1
            if has(e, "A90", "A91") or has(e, "A97", "A97"):
                surv["surv-02"][e.facility][w] += 1
            seen[e.facility].add(w)
    out: dict = {"morb-01": {"facility": {}}}
    for fac in sorted(morb):
        ranked = sorted(morb[fac].items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        out["morb-01"]["facility"][fac] = [{"category": k, "count": n} for k, n in ranked]
    for iid, minimum in (("surv-01", 5), ("surv-02", 3)):
        fac_out = {}
        for fac in sorted(surv[iid]):
            counts = surv[iid][fac]
            rows = []
            for i, w in enumerate(weeks):
                n = counts.get(w, 0)
                before = [counts.get(x, 0) for x in weeks[max(0, i - 4) : i]]
                before += [0] * (4 - len(before))
                mean = sum(before) / 4
                alert = n >= minimum and n >= 2 * mean
                if n or alert:
                    rows.append({"week": f"{w[0]}-W{w[1]:02d}", "count": n, "alert": alert})
            fac_out[fac] = rows
        out[iid] = {"facility": fac_out}
    dq: dict = {"puskesmas": {}}
    total_num = 0
    for f in sc.city.puskesmas:
        n = sum(1 for w in weeks if w in seen[f.code])
        total_num += n
        dq["puskesmas"][f.code] = {
            "numerator": n,
            "denominator": len(weeks),
            "score": round(n / len(weeks), 6),
        }
    den = len(weeks) * len(sc.city.puskesmas)
    dq["city"] = {
        "7472": {"numerator": total_num, "denominator": den, "score": round(total_num / den, 6)}
    }
    out["dq-01"] = dq
    return out


def population_table(sc: SynthCity) -> list[tuple]:
    """Residents alive at mid-period by kelurahan × sex × 5-year band: the true denominators."""
    ps, _pe = sc.period
    mid = date(ps.year, 7, 1)
    c: Counter[tuple] = Counter()
    for p in sc.persons:
        if p.birth > mid or (p.death is not None and p.death < mid):
            continue
        if p.moved_in is not None and p.moved_in > mid:
            continue
        if p.moved_out is not None and p.moved_out <= mid:
            continue
        band = min(age_years(p.birth, mid) // 5 * 5, 75)
        c[(p.kelurahan, p.sex, f"{band}-{band + 4}" if band < 75 else "75+")] += 1
    return [(k[0], k[1], k[2], mid.year, n) for k, n in sorted(c.items())]


def task_indicators(sc: SynthCity, out: Path) -> int:
    from .writer import _write, write_csv

    data = compute(sc)
    size = _write(out / "truth" / "indicators.json", orjson.dumps(data, option=orjson.OPT_INDENT_2))
    size += write_csv(
        out / "truth" / "population.csv",
        ["kelurahan", "sex", "age_band", "year", "count"],
        population_table(sc),
    )
    return size


TASKS: dict[str, Callable[..., int]] = {"truth_indicators": task_indicators}
