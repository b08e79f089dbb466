"""Recording errors: how one person looks in one source's record.

Every rate below is the probability that a record gets that error (where it can apply). The
`errors` tuple of a record names what was applied, so --stats can report observed rates."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import date
from functools import partial

from .model import Person


def _ri(rng: random.Random, a: int, b: int) -> int:
    """A uniform integer in [a, b]: `randint` without its layers of checks (hot path)."""
    return a + int(rng.random() * (b - a + 1))


RATES = {
    # names
    "old_spelling": 0.10,  # EYD ↔ older spelling (u/oe, y/j, j/dj, c/tj, kh/ch, sy/sj)
    "ode_joined": 0.18,  # La Ode → Laode (of La Ode / Wa Ode names)
    "ode_abbreviated": 0.06,  # La Ode → L.O.
    "prefix_dropped": 0.11,  # La / Wa / La Ode / Wa Ode left out
    "honorific": 0.20,  # H. / Hj. for Muslims aged 45+
    "degree": 0.05,  # S.Pd., S.E., ... for adults 25+
    "name_expanded": 0.25,  # single names expanded with BIN/BINTI father or the husband's name
    "typo": 0.04,  # one letter substituted, dropped or transposed
    # dates and sex
    "day_month_swapped": 0.015,  # when the day is 12 or less
    "year_off": 0.005,
    "birth_unknown_elderly": 0.08,  # 60+: recorded as 1 January / 1 July of the year
    "sex_wrong": 0.003,
    # identifiers
    "nik_missing": 0.10,  # Puskesmas; RSUD uses half of it
    "nik_mistyped": 0.02,
    "nik_of_relative": 0.01,  # a child recorded under a parent's NIK
    "phone_missing": 0.20,
    "address_code_missing": 0.03,
}
RSUD_SUFFIX = 0.6  # RSUD appends TN / NY / NN / AN / BY after the name (Depkes rules)
OLD_SPELLING = (("u", "oe"), ("y", "j"), ("j", "dj"), ("c", "tj"), ("kh", "ch"), ("sy", "sj"))
DEGREES = ("S.Pd.", "S.E.", "S.Kep.", "S.H.", "A.Md.", "S.Sos.", "S.T.")


@dataclass(slots=True)
class Record:
    source: str  # puskesmas | rsud | bpjs | satusehat
    facility: str  # facility code, or "bpjs" / "satusehat"
    system: str
    value: str
    pid: int
    name: str
    birth: date
    sex: str
    nik: str | None
    nik_ibu: str | None
    phone: str | None
    address_code: bool
    newborn: bool
    errors: tuple[str, ...]


def record_rng(seed: int, pid: int, where: str) -> random.Random:
    return random.Random((seed * 1_000_003 + pid) * 7919 + zlib.crc32(where.encode()))


def _old_spelling(rng: random.Random, name: str) -> str | None:
    lowered = name.lower()
    options = [(new, old) for new, old in OLD_SPELLING if new in lowered]
    if not options:
        return None
    new, old = rng.choice(options)
    i = lowered.index(new)
    repl = old if name[i].islower() else old.capitalize()
    return name[:i] + repl + name[i + len(new) :]


def _typo(rng: random.Random, name: str) -> str:
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    if len(letters) < 4:
        return name
    i = rng.choice(letters[1:])
    op = rng.random()
    if op < 0.4:
        c = rng.choice("aeiounrstlmkh")
        return name[:i] + (c.upper() if name[i].isupper() else c) + name[i + 1 :]
    if op < 0.7:
        return name[:i] + name[i + 1 :]
    j = i - 1
    return name[:j] + name[i] + name[j] + name[i + 1 :]


def _mistype_nik(rng: random.Random, nik: str) -> str:
    i = rng.randrange(6, 16)
    if rng.random() < 0.5 and i < 15:
        return nik[:i] + nik[i + 1] + nik[i] + nik[i + 2 :]
    d = str((int(nik[i]) + _ri(rng, 1, 9)) % 10)
    return nik[:i] + d + nik[i + 1 :]


def record_name(
    rng: random.Random, p: Person, on: date, errs: list[str], rsud: bool, persons: list[Person]
) -> str:
    prefix, given, family = p.prefix, p.given, p.family
    if prefix in ("La Ode", "Wa Ode"):
        x = rng.random()
        if x < RATES["ode_joined"]:
            prefix = prefix.replace(" Ode", "ode")
            errs.append("ode_joined")
        elif x < RATES["ode_joined"] + RATES["ode_abbreviated"]:
            prefix = "L.O." if prefix.startswith("La") else "W.O."
            errs.append("ode_abbreviated")
    if prefix and prefix != "Andi" and rng.random() < RATES["prefix_dropped"]:
        prefix = ""
        errs.append("prefix_dropped")
    name = " ".join(x for x in (prefix, given, family) if x)
    if rng.random() < RATES["old_spelling"]:
        v = _old_spelling(rng, given)
        if v is not None:
            name = " ".join(x for x in (prefix, v, family) if x)
            errs.append("old_spelling")
    age = on.year - p.birth.year
    single = not family and " " not in given
    if single and age >= 17 and rng.random() < RATES["name_expanded"] * (1.0 if rsud else 0.4):
        father = persons[p.father] if p.father is not None else None
        if p.sex == "female" and p.marital in ("M", "W"):
            husband = next(
                (
                    q
                    for q in persons[max(0, p.pid - 3) : p.pid + 3]
                    if q.household == p.household and q.sex == "male" and q.marital == "M"
                ),
                None,
            )
            if husband is not None:
                name = f"{name} {husband.given.split()[0]}"
                errs.append("name_expanded")
        elif father is not None:
            name = f"{name} {'Bin' if p.sex == 'male' else 'Binti'} {father.given.split()[0]}"
            errs.append("name_expanded")
    if rng.random() < RATES["typo"]:
        name = _typo(rng, name)
        errs.append("typo")
    if p.group in ("buton", "muslim") and age >= 45 and rng.random() < RATES["honorific"]:
        name = ("H. " if p.sex == "male" else "Hj. ") + name
        errs.append("honorific")
    if age >= 25 and rng.random() < RATES["degree"]:
        name = f"{name}, {rng.choice(DEGREES)}"
        errs.append("degree")
    if rsud:
        name = name.upper()
        if rng.random() < RSUD_SUFFIX:
            if age < 1:
                sfx = "BY"
            elif age < 15:
                sfx = "AN"
            elif p.sex == "male":
                sfx = "TN"
            else:
                sfx = "NY" if p.marital in ("M", "W") else "NN"
            name = f"{name}, {sfx}"
    return name


def record_birth(rng: random.Random, p: Person, on: date, errs: list[str]) -> date:
    b = p.birth
    if on.year - b.year >= 60 and rng.random() < RATES["birth_unknown_elderly"]:
        errs.append("birth_unknown_elderly")
        return date(b.year, rng.choice((1, 7)), 1)
    x = rng.random()
    if x < RATES["day_month_swapped"] and b.day <= 12 and b.day != b.month:
        errs.append("day_month_swapped")
        return date(b.year, b.day, b.month)
    if x > 1 - RATES["year_off"]:
        errs.append("year_off")
        y = b.year + rng.choice((-1, 1))
        return date(y, b.month, min(b.day, 28))
    return b


def format_phone(rng: random.Random, phone: str) -> str:
    rest = phone[1:]
    style = rng.randrange(5)
    if style == 0:
        return phone
    if style == 1:
        return "+62" + rest
    if style == 2:
        return "62" + rest
    if style == 3:
        return f"{phone[:4]}-{phone[4:8]}-{phone[8:]}"
    return f"+62 {rest[:3]}-{rest[3:7]}-{rest[7:]}"


def make_record(
    *,
    seed: int,
    p: Person,
    persons: list[Person],
    source: str,
    facility: str,
    system: str,
    value: str,
    on: date,
    newborn: bool,
    today: date,
    rng: random.Random | None = None,
) -> Record:
    """The person as `facility` recorded them when they first came (`on`). `rng` defaults to
    one seeded by (seed, person, facility); the generator passes one shared stream, drawn in
    a fixed order, which is faster."""
    if rng is None:
        rng = record_rng(seed, p.pid, f"{facility}/{'nb' if newborn else 'main'}")
    # the rest, in Record's order: name, birth, sex, nik, nik_ibu, phone, address_code,
    # newborn, errors
    record = partial(Record, source, facility, system, value, p.pid)
    errs: list[str] = []
    mother = persons[p.mother] if p.mother is not None else None
    if newborn and mother is not None:
        style = rng.choice(("By. Ny. {m}", "BY NY {M}", "Bayi Ny. {m}", "By Ny {m}"))
        name = style.format(m=mother.name, M=mother.name.upper())
        if p.multiple_birth:
            name += f" {p.multiple_birth}" if rng.random() < 0.5 else (" I" * p.multiple_birth)
        if source == "rsud":
            name = name.upper()
        return record(
            name, p.birth, p.sex, None, mother.nik, p.phone, True, True, ("newborn_as_mother",)
        )
    if source in ("bpjs", "satusehat"):
        # both hold the Dukcapil-verified identity: canonical name, NIK and birth date
        name = p.name.upper() if source == "bpjs" else p.name
        nik = p.nik if (p.nik_issued is None or p.nik_issued <= today) else None
        if p.nik_issued is None and p.birth >= date(today.year - 3, 1, 1):
            nik = None
        # a child without a NIK is known to SATUSEHAT by the mother's NIK (nik-ibu)
        nik_ibu = mother.nik if nik is None and mother is not None else None
        return record(name, p.birth, p.sex, nik, nik_ibu, p.phone, True, False, ())
    rsud = source == "rsud"
    name = record_name(rng, p, on, errs, rsud, persons)
    birth = record_birth(rng, p, on, errs)
    sex = p.sex
    if rng.random() < RATES["sex_wrong"]:
        sex = "female" if sex == "male" else "male"
        errs.append("sex_wrong")
    nik = p.nik
    if p.nik_issued is None or p.nik_issued > on:
        nik = None
    x = rng.random()
    missing = RATES["nik_missing"] * (0.5 if rsud else 1.0)
    if nik is not None:
        if x < missing:
            nik = None
            errs.append("nik_missing")
        elif x < missing + RATES["nik_mistyped"]:
            nik = _mistype_nik(rng, nik)
            errs.append("nik_mistyped")
        elif x < missing + RATES["nik_mistyped"] + RATES["nik_of_relative"]:
            parent = persons[p.father if p.father is not None else (p.mother or p.pid)]
            if parent.pid != p.pid and parent.nik:
                nik = parent.nik
                errs.append("nik_of_relative")
    phone = p.phone
    if phone is not None:
        if rng.random() < RATES["phone_missing"]:
            phone = None
            errs.append("phone_missing")
        else:
            phone = format_phone(rng, phone)
    addr = True
    if rng.random() < RATES["address_code_missing"]:
        addr = False
        errs.append("address_code_missing")
    return record(name, birth, sex, nik, None, phone, addr, False, tuple(errs))
