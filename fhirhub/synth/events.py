"""Health events: the encounters, measurements and immunisations of every person over the window.

Each person's events come from their own `random.Random` seeded by (seed, person id), so the
result does not depend on the order in which persons are processed. Rates are module constants,
documented in docs/synth.md."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from .city import City
from .growth import z_to_length, z_to_weight_for_length
from .model import Encounter, Obs, Person, Pregnancy
from .population import Population, age_on


def _ri(rng: random.Random, a: int, b: int) -> int:
    """A uniform integer in [a, b]: `randint` without its layers of checks (hot path)."""
    return a + int(rng.random() * (b - a + 1))


# --- rates -----------------------------------------------------------------------------------
VISITS_PER_YEAR = ((5, 1.3), (15, 0.45), (45, 0.5), (65, 0.8), (200, 1.2))  # (age below, rate)
OTHER_PUSKESMAS = 0.05  # share of primary-care visits at another Puskesmas than the home one
RSUD_OUTPATIENT = 0.06  # share of general visits made at the RSUD
GENERAL_DX = (
    ("J06.9", 22),
    ("J00", 6),
    ("K29.7", 8),
    ("M79.1", 7),
    ("R50.9", 6),
    ("L30.9", 5),
    ("J02.9", 5),
    ("K30", 5),
    ("R51", 4),
    ("K04.7", 4),
    ("M54.5", 4),
    ("H10.9", 3),
    ("N39.0", 3),
    ("T14.1", 3),
    ("B35.4", 2),
    ("J45.9", 2),
    ("E78.5", 2),
    ("J18.9", 2),
    ("L02.9", 2),
)
DIARRHOEA_PER_YEAR = {5: 0.22, 200: 0.04}  # by age below
DENGUE_PER_YEAR = 0.0035
SCREENING_15_59 = 0.40  # yearly Posbindu screening (BP + glucose + weight)
SCREENING_60 = 0.50
SCHOOL_SCREENING = 0.72  # yearly, residents 7–15
HYPERTENSION = ((35, 0.02), (45, 0.08), (55, 0.18), (65, 0.28), (200, 0.38))  # prevalence 15+
HYPERTENSION_INCIDENCE = 0.012  # per person-year, 30+
DIABETES = ((35, 0.005), (45, 0.03), (55, 0.07), (200, 0.11))
DIABETES_INCIDENCE = 0.004
NCD_VISITS = 4.5  # mean follow-up visits per year
NCD_LAPSED_YEAR = 0.35  # probability that a patient skips a whole year of follow-up
SMI = 0.0025  # prevalence of F20–F29 among 15+
SMI_ACTIVE_YEAR = 0.65
TB_PRESUMPTIVE = {15: 0.003, 200: 0.009}  # per person-year
TB_TESTED = 0.72
TB_POSITIVE = 0.15
HIV_TEST_ANC = 0.65
HIV_TEST_ADULT = 0.01  # per person-year, 15–49
ANC_COMPLIANCE = (("full", 0.74), ("partial", 0.21), ("none", 0.05))
KN_COMPLIANCE = (("full", 0.82), ("partial", 0.14), ("none", 0.04))
IMM_COMPLIANCE = (("full", 0.78), ("partial", 0.17), ("none", 0.05))
GROWTH_ATTENDANCE = (0.75, 0.2)  # mean and spread of the monthly Posyandu attendance of a child
STUNTING_Z = (-1.28, 1.05)  # child's latent length-for-age z: mean, sd
WFL_Z = (-0.45, 1.0)
DEATH_AT_RSUD = 0.45

# Outbreaks: (disease, puskesmas index, month offset in the period year, weeks, rate multiplier)
OUTBREAKS = (("dengue", 12, 1, 5, 10.0), ("diarrhoea", 3, 6, 3, 6.0))

IMM_SCHEDULE = (  # (cvx, dose, target age in days) of the infant schedule
    ("08", 1, 0),
    ("19", 1, 30),
    ("02", 1, 30),
    ("198", 1, 60),
    ("02", 2, 60),
    ("198", 2, 90),
    ("02", 3, 90),
    ("198", 3, 120),
    ("02", 4, 120),
    ("10", 1, 120),
    ("04", 1, 275),
)


def _choice(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for k, w in table:
        if x < w:
            return k
        x -= w
    return table[-1][0]


def _rate(table, age: int) -> float:
    for below, r in table:
        if age < below:
            return r
    return table[-1][1]


_GDX = [c for c, _ in GENERAL_DX]
_GDX_CUM = []
_acc = 0
for _c, _w in GENERAL_DX:
    _acc += _w
    _GDX_CUM.append(_acc)


class EventContext:
    """What every person's event generation shares: the city, the window, the outbreaks."""

    def __init__(self, city: City, pop: Population, seed: int, period_year: int) -> None:
        self.city = city
        self.seed = seed
        self.w0 = pop.window_start
        self.today = pop.today
        self.period_year = period_year
        self.pkm_codes = [f.code for f in city.puskesmas]
        self.rsud = city.rsud.code
        self.home = {k: f.code for f in city.puskesmas for k in f.kelurahan}
        self.preg_by_mother: dict[int, list[Pregnancy]] = {}
        for pr in pop.pregnancies:
            self.preg_by_mother.setdefault(pr.mother, []).append(pr)
        self.birth_preg: dict[int, Pregnancy] = {}
        self.persons = pop.persons
        self.outbreaks = []
        for disease, idx, month, weeks, mult in OUTBREAKS:
            start = date(period_year, 1 + month, 3 + (seed % 7))
            fac = self.pkm_codes[(idx + seed) % len(self.pkm_codes)]
            self.outbreaks.append((disease, fac, start, start + timedelta(weeks=weeks), mult))
        # each Puskesmas loses some weeks of records (system outage): dq-01 sees the gap
        rng = random.Random(seed * 7 + 1)
        self.outages: dict[str, tuple[date, date]] = {}
        for code in rng.sample(self.pkm_codes, 2):
            s = date(period_year, 1, 1) + timedelta(days=_ri(rng, 20, 300))
            self.outages[code] = (s, s + timedelta(days=rng.choice((14, 21))))

    def season(self, d: date, disease: str) -> float:
        m = d.month
        if disease == "dengue":  # rainy season peak January–April
            return (2.2, 2.6, 2.4, 1.8, 1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.7, 1.3)[m - 1]
        return (1.3, 1.3, 1.2, 1.0, 0.9, 0.8, 0.8, 0.8, 0.9, 1.0, 1.1, 1.2)[m - 1]

    def outbreak(self, d: date, fac: str, disease: str) -> float:
        for dis, f, s, e, mult in self.outbreaks:
            if dis == disease and f == fac and s <= d < e:
                return mult
        return 1.0


class _PersonEvents:
    def __init__(self, ctx: EventContext, p: Person) -> None:
        self.ctx = ctx
        self.p = p
        self.rng = random.Random(ctx.seed * 1_000_003 + p.pid * 7 + 3)
        self.home = ctx.home[p.kelurahan]
        self.start = max(ctx.w0, p.birth, p.moved_in or ctx.w0)
        end = ctx.today
        if p.death is not None:
            end = min(end, p.death)
        if p.moved_out is not None:
            end = min(end, p.moved_out - timedelta(days=1))
        self.end = end
        self.events: list[Encounter] = []

    # -- helpers -------------------------------------------------------------------------------
    def present(self, d: date) -> bool:
        return self.start <= d <= self.end

    def at(self, d: date, hour_lo: int = 8, hour_hi: int = 13) -> datetime:
        r = self.rng
        return datetime.combine(d, time(_ri(r, hour_lo, hour_hi - 1), _ri(r, 0, 59)))

    def add(
        self,
        d: date,
        fac: str,
        kind: str,
        dx: tuple[str, ...],
        obs: list[Obs] | None = None,
        klass: str = "AMB",
        days: int = 0,
        imm: list | None = None,
        died: bool = False,
    ) -> Encounter | None:
        if not self.present(d):
            return None
        start = self.at(d) if fac != self.ctx.rsud or klass == "AMB" else self.at(d, 0, 24)
        if days:
            end = start + timedelta(days=days, hours=_ri(self.rng, 0, 6))
        else:
            end = start + timedelta(minutes=_ri(self.rng, 10, 90))
        e = Encounter(start, end, fac, klass, kind, dx, obs or [], imm or [], died)
        self.events.append(e)
        return e

    def primary_fac(self) -> str:
        r = self.rng.random()
        if r < OTHER_PUSKESMAS:
            return self.rng.choice(self.ctx.pkm_codes)
        return self.home

    def poisson_dates(self, rate_per_year: float, start: date, end: date) -> list[date]:
        out: list[date] = []
        if rate_per_year <= 0 or end < start:
            return out
        t = 0.0
        span = (end - start).days
        while True:
            t += self.rng.expovariate(rate_per_year / 365.0)
            if t > span:
                return out
            out.append(start + timedelta(days=int(t)))

    def age(self, d: date) -> int:
        return age_on(self.p.birth, d)

    def vitals(self, d: date, bp: bool, weight: bool, glucose: bool) -> list[Obs]:
        r = self.rng
        obs: list[Obs] = []
        a = self.age(d)
        if bp:
            hyp = "I10" in self.p.chronic and self.p.chronic["I10"] <= d
            sys_ = r.gauss(150 if hyp else 118 + max(0, a - 40) * 0.5, 14)
            dia = sys_ * 0.62 + r.gauss(4, 6)
            obs.append(("85354-9", round(sys_), "mm[Hg]"))
            obs.append(("_dia", round(dia), "mm[Hg]"))
        if weight:
            obs.append(
                ("29463-7", round(r.gauss(58 if self.p.sex == "female" else 64, 10), 1), "kg")
            )
        if glucose:
            dm = "E11.9" in self.p.chronic and self.p.chronic["E11.9"] <= d
            obs.append(("2339-0", round(r.gauss(210 if dm else 105, 35 if dm else 15)), "mg/dL"))
        return obs

    # -- generators ----------------------------------------------------------------------------
    def general(self) -> None:
        ctx, r = self.ctx, self.rng
        a0 = self.age(self.start)
        rate = _rate(VISITS_PER_YEAR, a0)
        for d in self.poisson_dates(rate, self.start, self.end):
            dx = r.choices(_GDX, cum_weights=_GDX_CUM, k=1)[0]
            fac = self.primary_fac() if r.random() >= RSUD_OUTPATIENT else ctx.rsud
            a = self.age(d)
            obs = self.vitals(
                d, bp=a >= 15 and r.random() < 0.55, weight=r.random() < 0.35, glucose=False
            )
            if dx == "R50.9":
                obs.append(("8310-5", round(r.gauss(38.4, 0.5), 1), "Cel"))
            self.add(d, fac, "visit", (dx,), obs)
        # diarrhoea and dengue: seasonal, with outbreaks, thinned from a maximal rate
        a = a0
        for disease, base, mx in (
            ("diarrhoea", _rate(tuple(DIARRHOEA_PER_YEAR.items()), a), 6.0 * 1.3),
            ("dengue", DENGUE_PER_YEAR * (1.5 if 5 <= a < 15 else 1.0), 10.0 * 2.6),
        ):
            for d in self.poisson_dates(base * mx, self.start, self.end):
                fac = self.home
                accept = base * ctx.season(d, disease) * ctx.outbreak(d, fac, disease)
                if r.random() * base * mx >= accept:
                    continue
                if disease == "diarrhoea":
                    code = r.choice(("A09", "A09", "A09", "A04.9", "A08.4"))
                    self.add(
                        d,
                        fac if r.random() > 0.05 else ctx.rsud,
                        "visit",
                        (code,),
                        [("8310-5", round(r.gauss(37.4, 0.6), 1), "Cel")],
                    )
                else:
                    code = r.choice(("A90", "A91", "A90", "A97.0"))
                    temp = [("8310-5", round(r.gauss(38.9, 0.5), 1), "Cel")]
                    self.add(d, fac, "visit", (code,), temp)
                    if r.random() < 0.5:
                        self.add(
                            d + timedelta(days=1),
                            ctx.rsud,
                            "inpatient",
                            (code,),
                            temp,
                            klass="IMP",
                            days=_ri(r, 3, 6),
                        )

    def screening(self) -> None:
        r = self.rng
        for year in range(self.start.year, self.end.year + 1):
            d = date(year, _ri(r, 1, 12), _ri(r, 1, 28))
            a = self.age(d)
            if a >= 15 and r.random() < (SCREENING_15_59 if a < 60 else SCREENING_60):
                obs = self.vitals(d, bp=True, weight=True, glucose=True)
                self.add(d, self.home, "screening", ("Z13.6",), obs)
            elif 7 <= a <= 15 and r.random() < SCHOOL_SCREENING:
                d = date(year, _ri(r, 8, 10), _ri(r, 1, 28))
                a = self.age(d)
                if 7 <= a <= 15:
                    h = round(r.gauss(100 + 6 * a, 6), 1)
                    w = round(max(15.0, (h / 100) ** 2 * r.gauss(16.5, 2)), 1)
                    self.add(
                        d,
                        self.home,
                        "school",
                        ("Z00.2" if a < 13 else "Z00.3",),
                        [("29463-7", w, "kg"), ("8302-2", h, "cm")],
                    )

    def chronic(self) -> None:
        p, r, ctx = self.p, self.rng, self.ctx
        a0 = self.age(self.start)
        for code, prev, inc, meas in (
            ("I10", HYPERTENSION, HYPERTENSION_INCIDENCE, "bp"),
            ("E11.9", DIABETES, DIABETES_INCIDENCE, "glucose"),
        ):
            if a0 < 15:
                continue
            if r.random() < _rate(prev, a0):
                p.chronic[code] = self.start - timedelta(days=_ri(r, 60, 3650))
            elif a0 >= 30:
                ds = self.poisson_dates(inc, self.start, self.end)
                if ds:
                    p.chronic[code] = ds[0]
                    self.add(
                        ds[0],
                        self.home,
                        "ncd",
                        (code,),
                        self.vitals(ds[0], bp=True, weight=True, glucose=code != "I10"),
                    )
            if code not in p.chronic:
                continue
            since = max(self.start, p.chronic[code] + timedelta(days=1))
            for year in range(since.year, self.end.year + 1):
                if r.random() < NCD_LAPSED_YEAR:
                    continue
                ys = max(since, date(year, 1, 1))
                ye = min(self.end, date(year, 12, 31))
                for d in self.poisson_dates(NCD_VISITS, ys, ye):
                    fac = self.home if r.random() > 0.1 else ctx.rsud
                    dx = (code, "E11.9") if code == "I10" and "E11.9" in p.chronic else (code,)
                    obs = self.vitals(
                        d,
                        bp=meas == "bp" or r.random() < 0.6,
                        weight=r.random() < 0.5,
                        glucose=meas == "glucose" and r.random() < 0.85,
                    )
                    self.add(d, fac, "ncd", dx, obs)
        if a0 >= 15 and r.random() < SMI:
            code = r.choice(("F20.0", "F20.9", "F25.9", "F23.9"))
            p.chronic[code] = self.start - timedelta(days=_ri(r, 100, 5000))
            for year in range(self.start.year, self.end.year + 1):
                if r.random() >= SMI_ACTIVE_YEAR:
                    continue
                ys, ye = max(self.start, date(year, 1, 1)), min(self.end, date(year, 12, 31))
                for d in self.poisson_dates(4.0, ys, ye) or [ys + (ye - ys) // 2]:
                    self.add(d, self.home if r.random() > 0.2 else ctx.rsud, "ncd", (code,))

    def infections(self) -> None:
        r, ctx = self.rng, self.ctx
        a0 = self.age(self.start)
        for d in self.poisson_dates(_rate(tuple(TB_PRESUMPTIVE.items()), a0), self.start, self.end):
            self.add(d, self.home, "tb", ("Z03.0",))
            if r.random() < TB_TESTED:
                lag = int(r.triangular(0, 45, 5))
                fac = self.home if r.random() < 0.7 else ctx.rsud
                pos = r.random() < TB_POSITIVE
                code = r.choice(("88517-1", "88517-1", "11545-1", "38379-4"))
                e = self.add(
                    d + timedelta(days=lag),
                    fac,
                    "lab",
                    ("Z03.0",),
                    [(code, 1.0 if pos else 0.0, "")],
                )
                if e is not None and pos:
                    self.add(d + timedelta(days=lag + _ri(r, 1, 7)), self.home, "tb", ("A15.0",))
        if 15 <= a0 <= 49:
            for d in self.poisson_dates(HIV_TEST_ADULT, self.start, self.end):
                self.add(d, self.home, "lab", ("Z11.4",), [("75622-1", 0.0, "")])

    def pregnancies(self) -> None:
        p, r, ctx = self.p, self.rng, self.ctx
        for pr in ctx.preg_by_mother.get(p.pid, []):
            stop = pr.end or ctx.today
            if pr.outcome == "abortion":
                assert pr.end is not None
                if r.random() < 0.5:
                    self.add(
                        pr.lmp + timedelta(days=_ri(r, 42, 55)),
                        self.home,
                        "anc",
                        ("Z34.0",),
                        self.vitals(pr.lmp, bp=True, weight=True, glucose=False),
                    )
                fac = ctx.rsud if pr.place == "rsud" else self.home
                self.add(
                    pr.end,
                    fac,
                    "abortion",
                    ("O03.9",),
                    klass="IMP" if fac == ctx.rsud else "AMB",
                    days=1 if fac == ctx.rsud else 0,
                )
                continue
            comp = _choice(r, ANC_COMPLIANCE)
            first = "Z34.0" if r.random() < 0.3 else "Z34.8"
            risk = r.random() < 0.1
            weeks: list[int] = []
            if comp == "full":
                weeks = [_ri(r, 6, 11)] + ([_ri(r, 5, 11)] if r.random() < 0.3 else [])
                weeks += sorted(r.sample(range(14, 26), 2))
                weeks += sorted(r.sample(range(29, 37), r.choice((3, 3, 4))))
            elif comp == "partial":
                weeks = sorted(r.sample(range(8, 38), _ri(r, 1, 5)))
            hiv_done = False
            for i, w in enumerate(sorted(weeks)):
                d = pr.lmp + timedelta(days=7 * w + _ri(r, 0, 6))
                if d >= stop:
                    break
                fac = self.home if not (risk and r.random() < 0.4) else ctx.rsud
                code = "Z35.9" if risk and i > 0 else (first if i == 0 else "Z34.8")
                obs = self.vitals(d, bp=True, weight=True, glucose=False)
                if not hiv_done and r.random() < HIV_TEST_ANC:
                    obs.append(("75622-1", 0.0, ""))
                    hiv_done = True
                self.add(d, fac, "anc", (code,), obs)
            if pr.end is None:
                continue
            died = p.death is not None and p.death <= pr.end + timedelta(days=42)
            if pr.place == "home":
                if r.random() < 0.75:
                    self.add(
                        pr.end + timedelta(days=_ri(r, 1, 7)),
                        self.home,
                        "postnatal",
                        ("Z39.2",),
                        klass="HH",
                    )
                continue
            fac = ctx.rsud if pr.place == "rsud" else self.home
            dx = "O82" if fac == ctx.rsud and r.random() < 0.3 else "O80"
            klass = "IMP"
            self.add(
                pr.end,
                fac,
                "delivery",
                (dx, "Z37.1" if pr.outcome == "twins" else "Z37.0"),
                klass=klass,
                days=_ri(r, 1, 3),
            )
            if died and p.death is not None:
                # maternal deaths are recorded by the RSUD
                self.add(p.death, ctx.rsud, "death", ("O72.1",), klass="EMER", died=True)

    def infant(self) -> None:
        p, r, ctx = self.p, self.rng, self.ctx
        if p.birth < ctx.w0 - timedelta(days=5 * 365 + 2):
            return
        preg = ctx.birth_preg.get(p.pid)
        born_in_window = p.birth >= ctx.w0
        if born_in_window and preg is not None:
            facility_birth = preg.place != "home"
            birth_fac = (
                (ctx.rsud if preg.place == "rsud" else self.home) if facility_birth else None
            )
            comp = _choice(r, KN_COMPLIANCE)
            hb0_day = None
            imm_comp = _choice(r, IMM_COMPLIANCE)
            if imm_comp != "none" and r.random() < 0.92:
                hb0_day = 0 if facility_birth else _ri(r, 1, 7)
            bw = round(max(1.6, r.gauss(3.05, 0.45)), 2)
            bl = round(r.gauss(48.5, 2.0), 1)
            if birth_fac is not None:
                imm = [("08", 1)] if hb0_day == 0 else []
                self.add(
                    p.birth,
                    birth_fac,
                    "birth",
                    ("Z38.0",),
                    [("29463-7", bw, "kg"), ("8306-3", bl, "cm")],
                    klass="IMP",
                    imm=imm,
                )
            kn_days = []
            if comp == "full":
                kn_days = [_ri(r, 0, 2), _ri(r, 3, 7), _ri(r, 8, 28)]
            elif comp == "partial":
                kn_days = [r.choice((_ri(r, 0, 2), _ri(r, 3, 7), _ri(r, 8, 28)))]
            for i, k in enumerate(kn_days):
                fac = birth_fac if (i == 0 and birth_fac) else self.home
                imm = [("08", 1)] if hb0_day is not None and hb0_day > 0 and i == 1 else []
                if imm:
                    hb0_day = -1  # given
                self.add(
                    p.birth + timedelta(days=k),
                    fac,
                    "kn",
                    ("Z00.1",),
                    [("29463-7", round(bw + 0.025 * k, 2), "kg")],
                    klass="AMB" if fac != birth_fac or fac is None else "IMP",
                    imm=imm,
                )
            if hb0_day is not None and hb0_day > 0:
                self.add(
                    p.birth + timedelta(days=hb0_day),
                    self.home,
                    "imm",
                    ("Z24.6",),
                    klass="HH",
                    imm=[("08", 1)],
                )
            self.immunise(imm_comp)
        self.growth()

    def immunise(self, comp: str) -> None:
        p, r = self.p, self.rng
        if comp == "none":
            return
        visits: dict[int, list] = {}
        slip = 0
        for cvx, dose, target in IMM_SCHEDULE[1:]:
            if comp == "partial" and r.random() < 0.4:
                continue
            slip = max(slip, int(r.triangular(0, 40 if comp == "full" else 120, 7)))
            day = target + slip
            if comp == "full" and day >= 360:
                day = 330 + _ri(r, 0, 25)
            visits.setdefault(day, []).append((cvx, dose))
        for day in sorted(visits):
            self.add(
                p.birth + timedelta(days=day),
                self.home,
                "imm",
                ("Z27.8",),
                imm=visits[day],
                klass="AMB",
            )

    def growth(self) -> None:
        p, r = self.p, self.rng
        zl = r.gauss(*STUNTING_Z)
        zw = r.gauss(*WFL_Z)
        attend = min(0.98, max(0.05, r.gauss(*GROWTH_ATTENDANCE)))
        first = max(self.start, p.birth + timedelta(days=30))
        last = min(self.end, p.birth + timedelta(days=1825))
        if last < first:
            return
        m = date(first.year, first.month, 1)
        while m <= last:
            d = date(m.year, m.month, _ri(r, 5, 25))
            if first <= d <= last and r.random() < attend:
                age = (d - p.birth).days
                zl_now = zl + r.gauss(0, 0.18) - 0.1 * min(age, 730) / 730
                length = z_to_length(zl_now, age, p.sex)
                weight = z_to_weight_for_length(zw + r.gauss(0, 0.25), length, age, p.sex)
                obs: list[Obs] = [("29463-7", round(weight, 1), "kg")]
                if m.month in (2, 8) or r.random() < 0.1:
                    obs.append(("8306-3" if age < 731 else "8302-2", round(length, 1), "cm"))
                self.add(d, self.home, "growth", ("Z00.1",), obs)
            m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)

    def death(self) -> None:
        p, r, ctx = self.p, self.rng, self.ctx
        if p.death is None or p.death > ctx.today or p.death < self.start:
            return
        if any(e.died for e in self.events):
            return
        age_days = (p.death - p.birth).days
        if age_days < 28:
            dx = r.choice(("P07.3", "P21.9", "P36.9"))
        elif age_days < 365:
            dx = r.choice(("J18.9", "A09", "P07.3"))
        else:
            dx = r.choice(("I64", "I21.9", "J18.9", "C34.9", "N18.9", "R99", "E14.9"))
        if not self.present(p.death):
            return  # died after moving away: not recorded in Baubau
        if r.random() < DEATH_AT_RSUD:
            self.add(p.death, ctx.rsud, "death", (dx,), klass="EMER", died=True)
        else:
            self.add(p.death, self.home, "death", ("R99",), klass="HH", died=True)


def generate_events(ctx: EventContext, p: Person) -> list[Encounter]:
    g = _PersonEvents(ctx, p)
    if g.end < g.start:
        p.events = []
        return p.events
    steps: tuple[Callable[[], None], ...] = (
        g.general,
        g.screening,
        g.chronic,
        g.infections,
        g.pregnancies,
        g.infant,
        g.death,
    )
    for step in steps:
        step()
    out: list[Encounter] = []
    for e in g.events:
        o = ctx.outages.get(e.facility)
        if o is not None and o[0] <= e.start.date() < o[1] and not e.died:
            continue
        out.append(e)
    out.sort(key=lambda e: (e.start, e.facility, e.kind))
    p.events = out
    return out


def link_births(ctx: EventContext) -> None:
    by_mother_end: dict[tuple[int, date], Pregnancy] = {}
    for pregnancies in ctx.preg_by_mother.values():
        for x in pregnancies:
            if x.end is not None:
                by_mother_end[(x.mother, x.end)] = x
    for p in ctx.persons:
        if p.mother is not None:
            found = by_mother_end.get((p.mother, p.birth))
            if found is not None:
                ctx.birth_preg[p.pid] = found
