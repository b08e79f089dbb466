"""The population: households, persons, NIKs and BPJS cards, and the demographic events of the
window (births, deaths, migration). One `random.Random(seed)` drives it, in a fixed order."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from . import names
from .city import City
from .model import Person, Pregnancy


def _ri(rng: random.Random, a: int, b: int) -> int:
    """A uniform integer in [a, b]: `randint` without its layers of checks (hot path)."""
    return a + int(rng.random() * (b - a + 1))


# Age-specific fertility per year (Indonesia-like, TFR about 2.4), by 5-year band from 15.
ASFR = {15: 0.030, 20: 0.105, 25: 0.125, 30: 0.105, 35: 0.065, 40: 0.025, 45: 0.005}
# ASFR is per woman; births are drawn for married women only, hence the factor.
MARRIED_FERTILITY = 1.5
TWIN_RATE = 0.012
ABORTION_RATE = 0.10  # pregnancies ending as O03 (spontaneous abortion), 8–16 weeks
DELIVERY_PLACE = (("rsud", 0.35), ("puskesmas", 0.57), ("home", 0.08))
MATERNAL_DEATH = 0.0025  # per delivery, within 42 days
NEONATAL_DEATH = 0.010  # per live birth, day 0–27
POSTNEONATAL_DEATH = 0.007  # per live birth, day 28–364
OUT_MIGRATION = 0.012  # per person-year
IN_MIGRATION = 0.012  # persons arriving per resident-year
BPJS_SHARE = 0.88
NIK_BY_ONE_YEAR = 0.85  # newborns whose NIK is issued within a year
# NIK region of first registration for persons not first registered in Baubau.
OUTSIDE_REGIONS = ("740401", "740402", "740405", "740301", "740302", "737101", "737103", "737301")


@dataclass(slots=True)
class Population:
    persons: list[Person]
    pregnancies: list[Pregnancy] = field(default_factory=list)
    window_start: date = date(2024, 1, 1)
    today: date = date(2026, 10, 31)


def _age_on(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _rand_date(rng: random.Random, start: date, end: date) -> date:
    span = (end - start).days
    return start + timedelta(days=_ri(rng, 0, max(span, 0)))


def _birth_for_age(rng: random.Random, age: int, on: date) -> date:
    last = date(on.year - age, on.month, min(on.day, 28)) - timedelta(days=1)
    return last - timedelta(days=_ri(rng, 0, 364))


class _Builder:
    def __init__(self, city: City, seed: int, window_start: date, today: date) -> None:
        self.city = city
        self.rng = random.Random(seed)
        self.w0 = window_start
        self.today = today
        self.persons: list[Person] = []
        self.pregnancies: list[Pregnancy] = []
        self.nik_seq: dict[str, int] = {}
        self.hh = 0
        kel_w: list[tuple[str, float]] = []
        for kec_code, _name, pop in city.kecamatan:
            kels = [k for k in city.kelurahan if k[2] == kec_code]
            for j, k in enumerate(kels):
                kel_w.append((k[0], pop * (0.7 + 0.6 * ((j * 37) % 11) / 10) / len(kels)))
        self.kel_codes = [k for k, _ in kel_w]
        acc = 0.0
        self.kel_cum = []
        for _, w in kel_w:
            acc += w
            self.kel_cum.append(acc)
        self.seed = seed

    # -- identifiers -------------------------------------------------------------------------
    def nik(self, region: str, birth: date, sex: str) -> str:
        dd = birth.day + (40 if sex == "female" else 0)
        key = f"{region}{dd:02d}{birth.month:02d}{birth.year % 100:02d}"
        n = self.nik_seq.get(key, 0) + 1
        self.nik_seq[key] = n
        return f"{key}{n:04d}"

    def bpjs(self, pid: int) -> str:
        # a bijection of pid onto 10 digits (the multiplier is coprime with 10), so unique
        return f"000{(pid * 7_919_113 + 1_234_567 + self.seed * 97) % 10**10:010d}"

    def phone(self) -> str:
        rng = self.rng
        prefix = rng.choice(("0812", "0813", "0821", "0822", "0852", "0853", "0811", "0878"))
        return prefix + "".join(str(_ri(rng, 0, 9)) for _ in range(rng.choice((7, 8))))

    def region_of_first_registration(self, kelurahan: str, group: str, born_here: bool) -> str:
        rng = self.rng
        if born_here or rng.random() < 0.72:
            if rng.random() < 0.8:
                return kelurahan[:6]
            return rng.choice(self.city.kecamatan)[0]
        return rng.choice(OUTSIDE_REGIONS)

    # -- persons -----------------------------------------------------------------------------
    def add_person(
        self,
        *,
        hh: int,
        sex: str,
        birth: date,
        group: str,
        noble: bool,
        family: str,
        kel: str,
        street: str,
        rt: str,
        rw: str,
        phone: str | None,
        born_here: bool,
        marital: str = "S",
        mother: int | None = None,
        father: int | None = None,
    ) -> Person:
        rng = self.rng
        pid = len(self.persons)
        older = birth.year < 1975
        prefix, given, fam = names.make_name(rng, group, sex, noble, family, older)
        region = self.region_of_first_registration(kel, group, born_here)
        p = Person(
            pid=pid,
            household=hh,
            sex=sex,
            birth=birth,
            prefix=prefix,
            given=given,
            family=fam,
            group=group,
            kelurahan=kel,
            street=street,
            rt=rt,
            rw=rw,
            phone=phone,
            nik=self.nik(region, birth, sex),
            nik_issued=None,
            bpjs=self.bpjs(pid) if rng.random() < BPJS_SHARE else None,
            mother=mother,
            father=father,
            marital=marital,
        )
        self.persons.append(p)
        return p

    def pick_kelurahan(self) -> str:
        x = self.rng.random() * self.kel_cum[-1]
        return self.kel_codes[bisect.bisect_right(self.kel_cum, x)]

    def household(self, on: date, moved_in: date | None = None) -> list[Person]:
        rng = self.rng
        self.hh += 1
        hh = self.hh
        group = names.choose_group(rng)
        noble = rng.random() < (names.NOBLE_SHARE if group == "buton" else 0.03)
        family = names.family_name(rng, group)
        kel = self.pick_kelurahan()
        street = f"{names.pick(rng, names.STREETS)} No. {_ri(rng, 1, 120)}"
        rt, rw = f"{_ri(rng, 1, 12):03d}", f"{_ri(rng, 1, 6):03d}"
        phone = self.phone() if rng.random() < 0.9 else None
        common: dict[str, Any] = dict(
            hh=hh, group=group, noble=noble, family=family, kel=kel, street=street, rt=rt, rw=rw
        )
        members: list[Person] = []

        def adult(sex: str, age: int, marital: str) -> Person:
            """A member who came as an adult (not born here), on the household's phone."""
            return self.add_person(
                sex=sex,
                birth=_birth_for_age(rng, age, on),
                phone=phone,
                born_here=False,
                marital=marital,
                **common,
            )

        kind = rng.random()
        if kind < 0.82:  # couple (or single parent) with children
            wife_age = int(rng.triangular(19, 62, 34))
            wife_birth = _birth_for_age(rng, wife_age, on)
            single_parent = rng.random() < 0.09
            husband = None
            if not single_parent:
                h_age = min(85, max(wife_age, wife_age + int(rng.gauss(4, 3))))
                husband = adult("male", h_age, "M")
                members.append(husband)
            wife = self.add_person(
                sex="female",
                birth=wife_birth,
                phone=self.phone() if rng.random() < 0.6 else phone,
                born_here=False,
                marital="M" if husband else "W",
                **common,
            )
            members.append(wife)
            last_birth = None
            for y in range(0, min(wife_age - 17, 32)):
                mother_age = wife_age - y
                rate = ASFR.get(mother_age // 5 * 5, 0.0) * 1.2
                if rng.random() >= rate:
                    continue
                if last_birth is not None and y - last_birth < 2:
                    continue
                last_birth = y
                stays = 1.0 if y < 18 else (0.75 if y < 25 else 0.35)
                if rng.random() >= stays:
                    continue
                child_birth = _birth_for_age(rng, y, on)
                child = self.add_person(
                    sex=rng.choice(("male", "female")),
                    birth=child_birth,
                    phone=self.phone() if y >= 16 and rng.random() < 0.6 else phone,
                    born_here=True,
                    mother=wife.pid,
                    father=husband.pid if husband else None,
                    **common,
                )
                members.append(child)
            if rng.random() < 0.18 and wife_age < 50:
                g_age = min(92, wife_age + _ri(rng, 22, 35))
                members.append(adult("female" if rng.random() < 0.7 else "male", g_age, "W"))
        elif kind < 0.93:  # elderly couple or widow(er)
            age = int(rng.triangular(55, 90, 62))
            sex = "male" if rng.random() < 0.45 else "female"
            members.append(adult(sex, age, "M"))
            if rng.random() < 0.55:
                other = "female" if sex == "male" else "male"
                a2 = max(50, age + _ri(rng, -6, 4))
                members.append(adult(other, a2, "M"))
            else:
                members[0].marital = "W"
        else:  # young adults: students, workers
            for _ in range(rng.choice((1, 1, 2, 3))):
                age = int(rng.triangular(17, 32, 21))
                members.append(
                    self.add_person(
                        sex=rng.choice(("male", "female")),
                        birth=_birth_for_age(rng, age, on),
                        phone=self.phone(),
                        born_here=rng.random() < 0.5,
                        **common,
                    )
                )
        # parent and child sharing a name: a hard case for the patient index
        if len(members) > 2 and members[0].sex == "male" and rng.random() < 0.04:
            for m in members[2:]:
                if m.sex == "male" and m.father == members[0].pid:
                    m.prefix, m.given, m.family = (
                        members[0].prefix,
                        members[0].given,
                        members[0].family,
                    )
                    break
        for m in members:
            m.moved_in = moved_in
            m.nik_issued = m.birth + timedelta(days=60)
        return members

    # -- demographic events -------------------------------------------------------------------
    def births(self) -> None:
        rng = self.rng
        w0, today = self.w0, self.today
        start = w0 - timedelta(days=300)
        women = [
            p
            for p in self.persons
            if p.sex == "female" and p.marital == "M" and 15 <= _age_on(p.birth, w0) <= 49
        ]
        spouse: dict[int, int] = {}
        for p in self.persons:
            if p.sex == "male" and p.marital == "M":
                spouse.setdefault(p.household, p.pid)
        for w in women:
            t = max(start, w.moved_in or start)
            while True:
                age = _age_on(w.birth, t)
                rate = ASFR.get(age // 5 * 5, 0.0) * MARRIED_FERTILITY
                if rate <= 0:
                    break
                t = t + timedelta(days=int(rng.expovariate(rate / 365.0)))
                if t > today:
                    break
                lmp = t
                if w.death is not None and lmp > w.death:
                    break
                if w.moved_out is not None and lmp >= w.moved_out:
                    break  # later pregnancies happen outside Baubau
                x = rng.random()
                if x < ABORTION_RATE:
                    end: date | None = lmp + timedelta(days=_ri(rng, 56, 112))
                    outcome = "abortion"
                else:
                    gest = int(min(294, max(245, rng.gauss(276, 9))))
                    end = lmp + timedelta(days=gest)
                    outcome = "twins" if rng.random() < TWIN_RATE else "live"
                place = self._delivery_place()
                if outcome == "abortion":
                    place = "rsud" if rng.random() < 0.4 else "puskesmas"
                if end is not None and end > today:
                    end, outcome = None, "ongoing"
                if end is not None and w.death is not None and end >= w.death:
                    end, outcome = None, "died_pregnant"  # she died before the pregnancy ended
                if end is not None and w.moved_out is not None and end >= w.moved_out:
                    end, outcome = None, "moved_pregnant"  # it ends outside Baubau
                preg = Pregnancy(mother=w.pid, lmp=lmp, end=end, outcome=outcome, place=place)
                if end is not None and end < w0:
                    t = end + timedelta(days=200)
                    continue  # ended before the window: irrelevant except for spacing
                self.pregnancies.append(preg)
                if end is None:
                    break
                if outcome in ("live", "twins"):
                    self._newborns(w, preg, spouse.get(w.household))
                    if rng.random() < MATERNAL_DEATH:
                        w.death = end + timedelta(days=_ri(rng, 0, 42))
                t = end + timedelta(days=_ri(rng, 150, 400))

    def _delivery_place(self) -> str:
        x = self.rng.random()
        for place, share in DELIVERY_PLACE:
            if x < share:
                return place
            x -= share
        return "home"

    def _newborns(self, mother: Person, preg: Pregnancy, father: int | None) -> None:
        rng = self.rng
        assert preg.end is not None
        n = 2 if preg.outcome == "twins" else 1
        fpers = self.persons[father] if father is not None else None
        noble = (
            mother.prefix in ("Wa Ode",) if fpers is None else fpers.prefix in ("La Ode", "Andi")
        )
        for i in range(n):
            sex = rng.choice(("male", "female"))
            child = self.add_person(
                hh=mother.household,
                sex=sex,
                birth=preg.end,
                group=mother.group,
                noble=noble,
                family=mother.family or (fpers.family if fpers else ""),
                kel=mother.kelurahan,
                street=mother.street,
                rt=mother.rt,
                rw=mother.rw,
                phone=mother.phone,
                born_here=True,
                mother=mother.pid,
                father=father,
            )
            child.multiple_birth = i + 1 if n > 1 else 0
            child.moved_in = None
            if rng.random() < NIK_BY_ONE_YEAR:
                child.nik_issued = preg.end + timedelta(days=int(rng.triangular(7, 365, 40)))
            else:
                child.nik_issued = None
            if rng.random() < NEONATAL_DEATH:
                child.death = preg.end + timedelta(days=int(rng.triangular(0, 27, 1)))
            elif rng.random() < POSTNEONATAL_DEATH:
                child.death = preg.end + timedelta(days=_ri(rng, 28, 364))
            if child.death is not None and child.death > self.today:
                child.death = None

    def deaths_and_migration(self, upto: int) -> None:
        rng = self.rng
        w0, today = self.w0, self.today
        for p in self.persons[:upto]:
            start = p.moved_in or w0
            y0 = start
            while y0 <= today and p.death is None and p.moved_out is None:
                y1 = min(today, date(y0.year, 12, 31))
                frac = ((y1 - y0).days + 1) / 365.0
                age = _age_on(p.birth, y0)
                q = 0.0006 * 2.718281828 ** (0.085 * (age - 30)) if age >= 5 else 0.0008
                if rng.random() < min(0.5, q) * frac:
                    p.death = _rand_date(rng, y0, y1)
                elif 16 <= age <= 45 and rng.random() < OUT_MIGRATION * 1.6 * frac:
                    p.moved_out = _rand_date(rng, y0, y1)
                y0 = date(y0.year + 1, 1, 1)

    def in_migration(self, residents: int) -> None:
        rng = self.rng
        years = ((self.today - self.w0).days + 1) / 365.0
        target = int(residents * IN_MIGRATION * years)
        arrived = 0
        while arrived < target:
            when = _rand_date(rng, self.w0, self.today)
            members = self.household(when, moved_in=when)
            for m in members:
                m.nik = (
                    self.nik(rng.choice(OUTSIDE_REGIONS), m.birth, m.sex)
                    if rng.random() < 0.7
                    else m.nik
                )
            arrived += len(members)


def build_population(
    city: City, persons: int, seed: int, window_start: date, today: date
) -> Population:
    b = _Builder(city, seed, window_start, today)
    while len(b.persons) < persons:
        b.household(window_start)
    residents = len(b.persons)
    b.in_migration(residents)
    b.deaths_and_migration(len(b.persons))
    b.births()
    return Population(
        persons=b.persons, pregnancies=b.pregnancies, window_start=window_start, today=today
    )


def age_on(birth: date, on: date) -> int:
    return _age_on(birth, on)
