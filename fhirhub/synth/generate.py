"""The synthetic city in memory: population, events and the records each source keeps of each
person. Everything written to disk, and the demo bundles, are rendered from this."""

from __future__ import annotations

import gc
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from . import fhir
from .city import BPJS, IHS, NIK, City, Facility, format_mrn, load_city, mrn_system
from .errors import Record, make_record
from .events import GENERAL_DX, EventContext, generate_events, link_births
from .model import Encounter, Person
from .population import Population, build_population

DEFAULT_TODAY = date(2026, 10, 31)
NEWBORN_DAYS = 28  # encounters in the first 28 days of life sit on the "By. Ny." record
BUNDLE_PATIENTS = 100  # patients per Puskesmas transaction Bundle

RecKey = tuple[int, str, bool]  # (person id, facility code, newborn record?)


@dataclass(slots=True)
class SynthCity:
    city: City
    pop: Population
    seed: int
    today: date
    period: tuple[date, date]
    records: dict[RecKey, Record] = field(default_factory=dict)
    bpjs_records: dict[int, Record] = field(default_factory=dict)
    ss_records: dict[int, Record] = field(default_factory=dict)
    synced: set[tuple[int, int]] = field(default_factory=set)  # (pid, event index)
    # facility code -> ids of the persons with events there, in person order
    visitors: dict[str, list[int]] = field(default_factory=dict)
    # RSUD registrations are numbered per day (no_rawat YYYY/MM/DD/NNNNNN): (pid, idx) -> n
    rsud_seq: dict[tuple[int, int], int] = field(default_factory=dict)
    ss_org_ids: dict[str, str] = field(default_factory=dict)

    @property
    def persons(self) -> list[Person]:
        return self.pop.persons

    def record_key(self, p: Person, e: Encounter) -> RecKey:
        newborn = (
            p.birth >= self.pop.window_start and (e.start.date() - p.birth).days < NEWBORN_DAYS
        )
        return (p.pid, e.facility, newborn)

    def encounter_value(self, p: Person, idx: int, e: Encounter, fac: Facility) -> str:
        n = ((p.pid * 1000 + idx) * 2_654_435_761 + self.seed) % 10**9
        d = e.start
        if fac.kind == "rsud":
            return f"{d.year:04d}/{d.month:02d}/{d.day:02d}/{self.rsud_seq[(p.pid, idx)]:06d}"
        return f"{d.year % 100:02d}{d.month:02d}{d.day:02d}{n:09d}"

    def deceased_at(self, p: Person, fac: str) -> date | None:
        if p.death is None or p.death > self.today:
            return None
        if any(e.died and e.facility == fac for e in p.events):
            return p.death
        return None


def build(
    persons: int,
    seed: int,
    today: date = DEFAULT_TODAY,
    period_year: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SynthCity:
    # The model is millions of small objects that all live until the end: the cyclic garbage
    # collector would rescan them again and again (it tripled the run time), so it is paused
    # while building and the finished model is frozen out of its sight.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        sc = _build(persons, seed, today, period_year, progress)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
    return sc


def _build(
    persons: int,
    seed: int,
    today: date,
    period_year: int | None,
    progress: Callable[[str, int, int], None] | None,
) -> SynthCity:
    city = load_city()
    w0 = date(today.year - 2, 1, 1)
    py = period_year if period_year is not None else today.year - 1
    pop = build_population(city, persons, seed, w0, today)
    ctx = EventContext(city, pop, seed, py)
    link_births(ctx)
    total = len(pop.persons)
    for i, p in enumerate(pop.persons):
        generate_events(ctx, p)
        if progress is not None and i % 2000 == 0:
            progress("events", i, total)
    sc = SynthCity(city, pop, seed, today, (date(py, 1, 1), date(py, 12, 31)))
    _assign_records(sc)
    fhir._ALL_DX.update(c for c, _ in GENERAL_DX)
    for p in pop.persons:
        for e in p.events:
            fhir._ALL_DX.update(e.dx)
    return sc


def _assign_records(sc: SynthCity) -> None:
    city, persons = sc.city, sc.persons
    counters = {f.code: 0 for f in city.facilities}
    first_on: dict[RecKey, date] = {}
    rng = random.Random(sc.seed * 31 + 11)  # one stream, drawn in person order
    per_day: dict[date, int] = {}
    rsud = city.rsud.code
    rec_rng = random.Random(sc.seed * 37 + 5)
    for p in persons:
        keys: list[RecKey] = []
        synced_any = False
        for idx, e in enumerate(p.events):
            if e.facility == rsud:
                day = e.start.date()
                per_day[day] = per_day.get(day, 0) + 1
                sc.rsud_seq[(p.pid, idx)] = per_day[day]
            k = sc.record_key(p, e)
            if k not in first_on:
                first_on[k] = e.start.date()
                keys.append(k)
            if rng.random() < city.facility(e.facility).sync_rate:
                sc.synced.add((p.pid, idx))
                synced_any = True
        for code in dict.fromkeys(k[1] for k in keys):
            sc.visitors.setdefault(code, []).append(p.pid)
        for k in keys:
            fac = city.facility(k[1])
            counters[fac.code] += 1
            value = format_mrn(fac, counters[fac.code])
            sc.records[k] = make_record(
                seed=sc.seed,
                p=p,
                persons=persons,
                source=fac.kind,
                facility=fac.code,
                system=mrn_system(fac.code),
                value=value,
                on=first_on[k],
                newborn=k[2],
                today=sc.today,
                rng=rec_rng,
            )
        if p.events and p.bpjs:
            sc.bpjs_records[p.pid] = _registry_record(sc, p, "bpjs", BPJS, p.bpjs)
        if synced_any:
            p.ihs = f"P{(p.pid * 48_271 + 10_000_000_000 + sc.seed * 13) % 10**11:011d}"
            sc.ss_records[p.pid] = _registry_record(sc, p, "satusehat", IHS, p.ihs)


def _registry_record(sc: SynthCity, p: Person, registry: str, system: str, value: str) -> Record:
    """The person as a national registry (BPJS, SATUSEHAT) holds them since their first visit."""
    return make_record(
        seed=sc.seed,
        p=p,
        persons=sc.persons,
        source=registry,
        facility=registry,
        system=system,
        value=value,
        on=p.events[0].start.date(),
        newborn=False,
        today=sc.today,
    )


class _Urls:
    def __init__(self, tag: str, seed: int) -> None:
        self.prefix = f"urn:uuid:{zlib.crc32(f'{tag}/{seed}'.encode()):08x}-"
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        n = self.n
        a, b, c = n >> 48 & 0xFFFF, n >> 36 & 0xFFF, n >> 24 & 0xFFF
        return f"{self.prefix}{a:04x}-4{b:03x}-8{c:03x}-{n & 0xFFFFFF:012x}"


def reference_bundle(sc: SynthCity) -> dict:
    return fhir.put_bundle(fhir.reference_resources(sc.city))


def puskesmas_bundles(sc: SynthCity, fac: Facility) -> Iterator[dict]:
    """The transaction Bundles of one Puskesmas, `BUNDLE_PATIENTS` patients each, in person
    order: each Patient as a conditional create, then its encounters."""
    city = sc.city
    urls = _Urls(fac.code, sc.seed)
    ts: Callable[[datetime], str] = fhir.wita if fac.code[-1] in "13579" else fhir.utc
    practs = fhir.practitioner_ids(fac)
    entries: list[dict] = []
    n_pat = 0
    for pid in sc.visitors.get(fac.code, ()):
        p = sc.persons[pid]
        mine = [(i, e) for i, e in enumerate(p.events) if e.facility == fac.code]
        for newborn in (True, False):
            rec = sc.records.get((p.pid, fac.code, newborn))
            if rec is None:
                continue
            pat_url = urls()
            pat = fhir.patient_resource(city, rec, p, sc.deceased_at(p, fac.code), sc.today)
            entries.append(
                {
                    "fullUrl": pat_url,
                    "resource": pat,
                    "request": {
                        "method": "POST",
                        "url": "Patient",
                        "ifNoneExist": f"identifier={rec.system}|{rec.value}",
                    },
                }
            )
            for idx, e in mine:
                if sc.record_key(p, e)[2] != newborn:
                    continue
                pr = practs[(p.pid + idx) % len(practs)]
                for url, res in fhir.encounter_resources(
                    e,
                    fac,
                    sc.encounter_value(p, idx, e, fac),
                    pat_url,
                    urls,
                    ts,
                    pr,
                    fac.local_codes,
                ):
                    entries.append(
                        {
                            "fullUrl": url,
                            "resource": res,
                            "request": {"method": "POST", "url": res["resourceType"]},
                        }
                    )
            n_pat += 1
        if n_pat >= BUNDLE_PATIENTS:
            yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            entries, n_pat = [], 0
    if entries:
        yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def person_identity(p: Person) -> str:
    """A person's true identifiers, for truth/people.csv (never logged)."""
    return p.nik or ""


__all__ = ["NIK", "SynthCity", "build", "puskesmas_bundles", "reference_bundle"]
