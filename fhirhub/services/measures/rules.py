"""The indicator rules of INDICATORS.md, one function per ``measure-rule``, every number and
code list read from the Measure's parameters.

A person rule looks at one person (already known to be a resident alive in the period) and
returns the populations the person is in, per group (``None`` for a single-group measure).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta

from fhirhub.services.measures.catalogue import MeasureDef
from fhirhub.services.measures.codes import bounds, code_set, icd_set, within
from fhirhub.services.measures.people import Measurement, Person
from fhirhub.services.measures.period import Period, age_months, age_years, first_birthday
from fhirhub.synth.growth import zscores

IP, NUM, DEN = "initial-population", "numerator", "denominator"
Populations = dict[str | None, set[str]]
Context = Mapping[str, object]  # providers: the Organization keys that are health facilities
PersonRule = Callable[[MeasureDef, Person, Period, Context], Populations]


def _pops(yes: bool, *, kind: str) -> set[str]:
    out = {IP}
    if kind == "C":
        out.add(DEN)
    if yes:
        out.add(NUM)
    return out


def _in_age(m: MeasureDef, p: Person, period: Period) -> bool:
    assert p.birth is not None
    years, months, sex = m.params.get("age-years"), m.params.get("age-months"), m.params.get("sex")
    if years and not within(age_years(p.birth, period.end), bounds(str(years[0]))):
        return False
    if months and not within(age_months(p.birth, period.end), bounds(str(months[0]))):
        return False
    return not sex or p.gender == sex[0]


def antenatal_care(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    if not _in_age(m, p, period):
        return {}
    ends_codes = icd_set(m.value("pregnancy-end-codes"))
    contact = icd_set(m.value("contact-codes"))
    days = int(m.value("pregnancy-days"))
    minimum = int(m.value("min-contacts"))
    by_week = [
        (bounds(part.split(":")[0]), int(part.split(":")[1]))
        for part in str(m.value("contacts-by-week")).split(",")
    ]
    ends = [e for e in p.events if e.encounter and e.day in period and ends_codes.any_of(e.codes)]
    if not ends:
        return {}
    ok = False
    for end_event in ends:
        end = end_event.day
        start = end - timedelta(days=days)
        weeks = [
            (e.day - start).days // 7
            for e in p.events
            if e.encounter and start <= e.day < end and contact.any_of(e.codes)
        ]
        if len(weeks) >= minimum and all(
            sum(1 for w in weeks if within(w, span)) >= n for span, n in by_week
        ):
            ok = True
    return {None: _pops(ok, kind=m.kind)}


def facility_delivery(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    if not _in_age(m, p, period):
        return {}
    codes = icd_set(m.value("delivery-codes"))
    providers = ctx["providers"]
    assert isinstance(providers, set)
    deliveries = [e for e in p.events if e.encounter and e.day in period and codes.any_of(e.codes)]
    if not deliveries:
        return {}
    return {None: _pops(any(e.provider in providers for e in deliveries), kind=m.kind)}


def newborn_visits(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    assert p.birth is not None
    if p.birth not in period:
        return {}
    codes = icd_set(m.value("visit-codes"))
    days = {(e.day - p.birth).days for e in p.events if e.encounter and codes.any_of(e.codes)}
    windows = [bounds(w) for w in str(m.value("visit-days")).split(",")]
    ok = all(any(within(d, w) for d in days) for w in windows)
    return {None: _pops(ok, kind=m.kind)}


def measurement_counts(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    if not _in_age(m, p, period):
        return {}
    in_period = [x for x in p.measurements if x.day in period]
    ok = True
    for spec in m.values("min-count"):
        codes, _, n = str(spec).rpartition(":")
        wanted = code_set(codes)
        if sum(1 for x in in_period if x.codes & wanted) < int(n):
            ok = False
    return {None: _pops(ok, kind=m.kind)}


def encounter_in_period(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    if not _in_age(m, p, period):
        return {}
    codes = icd_set(m.value("service-codes"))
    ok = any(e.encounter and e.day in period and codes.any_of(e.codes) for e in p.events)
    return {None: _pops(ok, kind=m.kind)}


def _diagnosed_by(p: Person, codes: str, end: date) -> bool:
    wanted = icd_set(codes)
    return any(e.day <= end and wanted.any_of(e.codes) for e in p.events)


def chronic_measured(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    if not _in_age(m, p, period) or not _diagnosed_by(p, m.value("condition-codes"), period.end):
        return {}
    wanted = code_set(m.value("measurement-codes"))
    ok = any(x.day in period and x.codes & wanted for x in p.measurements)
    return {None: _pops(ok, kind=m.kind)}


def chronic_encounter(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    if not _in_age(m, p, period) or not _diagnosed_by(p, m.value("condition-codes"), period.end):
        return {}
    codes = icd_set(m.value("condition-codes"))
    ok = any(e.encounter and e.day in period and codes.any_of(e.codes) for e in p.events)
    return {None: _pops(ok, kind=m.kind)}


def presumptive_tested(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    if not _in_age(m, p, period):
        return {}
    codes = icd_set(m.value("presumptive-codes"))
    first = next((e.day for e in p.events if codes.any_of(e.codes)), None)
    if first is None or first not in period:
        return {}
    tests = code_set(m.value("test-codes"))
    last = first + timedelta(days=int(m.value("test-within-days")))
    ok = any(first <= x.day <= last and x.codes & tests for x in p.measurements)
    return {None: _pops(ok, kind=m.kind)}


def immunisation(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    assert p.birth is not None
    birthday = first_birthday(p.birth)
    if birthday not in period or (p.death is not None and p.death < birthday):
        return {}
    before = [d for d in p.doses if d.day < birthday]
    ok = True
    for spec in m.values("dose"):
        parts = str(spec).split(":")
        cvx, n = code_set(parts[0]), int(parts[1])
        by_day = int(parts[2]) if len(parts) > 2 and parts[2] else None
        given = [
            d
            for d in before
            if d.cvx & cvx and (by_day is None or (d.day - p.birth).days <= by_day)
        ]
        if len(given) < n:
            ok = False
    return {None: _pops(ok, kind=m.kind)}


def growth(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    """nut-01 (one group: length/height-for-age) and nut-02 (wasting, underweight), with the
    WHO 2006 z-scores of :mod:`fhirhub.synth.growth` (shared with the synthetic city)."""
    if not _in_age(m, p, period):
        return {}
    assert p.birth is not None
    birth = p.birth
    heights = code_set(m.value("height-codes"))
    recumbent = code_set(m.value("recumbent-codes"))
    weights = code_set(m.value("weight-codes"))
    below = float(m.value("z-below"))
    sex = p.gender or ""
    in_period = [x for x in p.measurements if x.day in period and x.value is not None]
    h = [x for x in in_period if x.codes & heights]
    w = [x for x in in_period if x.codes & weights]

    def length(x: Measurement) -> tuple[float, str]:
        assert x.value is not None
        return x.value, "L" if x.codes & recumbent else "H"

    out: Populations = {}
    groups = [g.code for g in m.groups]
    if None in groups and h:  # nut-01: latest length/height
        x = h[-1]
        value, how = length(x)
        z, _, _ = zscores(sex, (x.day - birth).days, None, value, how)
        out[None] = _pops(z is not None and z < below, kind="C")
    if "wasting" in groups:  # latest day with both a weight and a length/height
        days = sorted({x.day for x in h} & {x.day for x in w})
        if days:
            day = days[-1]
            hx = [x for x in h if x.day == day][-1]
            wx = [x for x in w if x.day == day][-1]
            value, how = length(hx)
            _, _, z = zscores(sex, (day - birth).days, wx.value, value, how)
            out["wasting"] = {IP, DEN} | ({NUM} if z is not None and z < below else set())
    if "underweight" in groups and w:
        x = w[-1]
        _, z, _ = zscores(sex, (x.day - birth).days, x.value, None, "L")
        out["underweight"] = {IP, DEN} | ({NUM} if z is not None and z < below else set())
    return out


def maternal_death(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    if p.death is None or p.death not in period or not _in_age(m, p, period):
        return {}
    d = p.death
    pregnancy = icd_set(m.value("pregnancy-codes"))
    outcome = icd_set(m.value("outcome-codes"))
    preg_from = d - timedelta(days=int(m.value("pregnancy-days")))
    post_from = d - timedelta(days=int(m.value("postpartum-days")))
    pregnant = any(
        e.encounter and preg_from <= e.day <= d and pregnancy.any_of(e.codes) for e in p.events
    )
    postpartum = any(
        e.encounter and post_from <= e.day <= d and outcome.any_of(e.codes) for e in p.events
    )
    if not (pregnant or postpartum):
        return {}
    return {None: {IP, NUM}}


def child_death(m: MeasureDef, p: Person, period: Period, ctx: Context) -> Populations:
    assert p.birth is not None
    if p.death is None or p.death not in period:
        return {}
    age = (p.death - p.birth).days
    out: Populations = {}
    for group in m.groups:
        if group.code and age < int(m.value(f"{group.code}-days")):
            out[group.code] = {IP, NUM}
    return out


PERSON_RULES: dict[str, PersonRule] = {
    "antenatal-care": antenatal_care,
    "facility-delivery": facility_delivery,
    "newborn-visits": newborn_visits,
    "measurement-counts": measurement_counts,
    "encounter-in-period": encounter_in_period,
    "chronic-measured": chronic_measured,
    "chronic-encounter": chronic_encounter,
    "presumptive-tested": presumptive_tested,
    "immunisation": immunisation,
    "growth": growth,
    "maternal-death": maternal_death,
    "child-death": child_death,
}
