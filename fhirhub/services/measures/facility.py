"""Indicators counted per facility rather than per person: morb-01 (top diagnoses), surv-01/02
(weekly counts and their alerts) and dq-01 (reporting completeness)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fhirhub.services.measures.catalogue import MeasureDef
from fhirhub.services.measures.codes import icd_set
from fhirhub.services.measures.people import Event
from fhirhub.services.measures.period import Period, epi_week, epi_weeks, week_label


@dataclass(frozen=True)
class Cell:
    """One stratum of a facility indicator: its components, counts and alert flag."""

    components: tuple[tuple[str, str], ...]  # (stratifier component, value)
    counts: Mapping[str, int]
    alert: bool | None = None


@dataclass(frozen=True)
class FacilityResult:
    totals: Mapping[str, int]
    stratifier: str
    cells: Sequence[Cell]


FacilityOf = Callable[[str | None], str | None]


def top_diagnoses(
    m: MeasureDef,
    encounters: Sequence[Event],
    period: Period,
    facility_of: FacilityOf,
    only: str | None,
) -> FacilityResult:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for e in encounters:
        fac = facility_of(e.provider)
        if e.day not in period or e.first_dx is None or fac is None or (only and fac != only):
            continue
        per[fac][e.first_dx[:3]] += 1
    top = int(m.value("top"))
    cells = []
    total = 0
    for fac in sorted(per):
        ranked = sorted(per[fac].items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        for category, n in ranked:
            total += n
            cells.append(
                Cell((("facility", fac), ("category", category)), {"initial-population": n})
            )
    return FacilityResult({"initial-population": total}, "facility-category", cells)


def weekly_surveillance(
    m: MeasureDef,
    encounters: Sequence[Event],
    period: Period,
    facility_of: FacilityOf,
    only: str | None,
) -> FacilityResult:
    """Encounters with the codes per facility and epi week; a week alerts when its count is at
    least ``alert-factor`` × the mean of the ``baseline-weeks`` before it (counted by the same
    rule: days outside the period count nothing) and at least ``alert-minimum``."""
    codes = icd_set(m.value("codes"))
    factor = float(m.value("alert-factor"))
    baseline = int(m.value("baseline-weeks"))
    minimum = int(m.value("alert-minimum"))
    weeks = epi_weeks(period)
    counts: dict[str, Counter[tuple[int, int]]] = defaultdict(Counter)
    for e in encounters:
        fac = facility_of(e.provider)
        if e.day not in period or fac is None or (only and fac != only):
            continue
        if codes.any_of(e.codes):
            counts[fac][epi_week(e.day)] += 1
    cells = []
    total = 0
    for fac in sorted(counts):
        for i, week in enumerate(weeks):
            n = counts[fac].get(week, 0)
            before = [counts[fac].get(w, 0) for w in weeks[max(0, i - baseline) : i]]
            mean = sum(before) / baseline
            alert = n >= minimum and n >= factor * mean
            total += n
            if n or alert:
                cells.append(
                    Cell(
                        (("facility", fac), ("epi-week", week_label(week))),
                        {"initial-population": n},
                        alert,
                    )
                )
    return FacilityResult({"initial-population": total}, "facility-week", cells)


def reporting_completeness(
    m: MeasureDef,
    encounters: Sequence[Event],
    period: Period,
    facility_of: FacilityOf,
    only: str | None,
    puskesmas: Sequence[str],
) -> FacilityResult:
    weeks = epi_weeks(period)
    seen: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for e in encounters:
        fac = facility_of(e.provider)
        if e.day in period and fac is not None:
            seen[fac].add(epi_week(e.day))
    cells = []
    num = den = 0
    for code in puskesmas:
        if only and code != only:
            continue
        n = sum(1 for w in weeks if w in seen[code])
        num += n
        den += len(weeks)
        cells.append(Cell((("puskesmas", code),), {"numerator": n, "denominator": len(weeks)}))
    totals = {"initial-population": den, "denominator": den, "numerator": num}
    cells = [
        Cell(c.components, {"initial-population": c.counts["denominator"], **c.counts})
        for c in cells
    ]
    return FacilityResult(totals, "puskesmas", cells)
