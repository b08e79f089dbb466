"""Persons and their events, assembled from view rows.

A person is a ``Person`` of the patient index (``link[].target`` = ``Patient/{id}``): counted
once however many Patient records it links. A Patient that no Person links is a person of its
own. Demographics are the master record's: the Person's own ``gender``, ``birthDate`` and
address when it has them, else the value most of its Patient records agree on. A death is the
earliest ``deceasedDateTime`` of its records.

An event is an Encounter (its date the WITA date of ``period.start``; its codes those of its
``reasonCode``, of the Conditions its ``diagnosis`` lists and of the Conditions recorded in it),
or a Condition recorded outside any Encounter (dated by ``recordedDate`` or ``onset``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import attrgetter
from typing import Any

from fhirhub.services.measures.period import local_date, local_moment

Rows = Callable[..., Iterable[tuple[Any, ...]]]  # (view name, *columns) -> their values a row


@dataclass(slots=True)
class Event:
    key: str  # Encounter/… or Condition/…
    day: date
    instant: datetime  # orders a day's events (period.local_moment)
    codes: set[str]  # ICD-10
    encounter: bool  # False for a Condition recorded outside an encounter
    provider: str | None = None  # Organization/… of the encounter
    first_dx: str | None = None  # code of the first (rank 1) diagnosis


@dataclass(slots=True)
class Measurement:
    key: str
    day: date
    instant: datetime  # orders a day's events (period.local_moment)
    codes: frozenset[str]  # LOINC, of code and components
    value: float | None
    encounter: str | None


@dataclass(slots=True)
class Dose:
    day: date
    cvx: frozenset[str]


@dataclass(slots=True)
class Person:
    key: str  # Person/… or Patient/…
    gender: str | None = None
    birth: date | None = None
    kelurahan: str | None = None
    death: date | None = None
    records: list[str] = field(default_factory=list)  # Patient/… keys
    events: list[Event] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    doses: list[Dose] = field(default_factory=list)


def _agreed(values: Iterable[Any]) -> Any:
    """The value most records agree on (ties: the first record's)."""
    counted = Counter(v for v in values if v is not None)
    if not counted:
        return None
    best = max(counted.values())
    return next(v for v in counted if counted[v] == best)


class People:
    """The persons of the store and an index from Patient records to them."""

    def __init__(self, rows: Rows, resident: re.Pattern[str]) -> None:
        self.resident = resident
        self.persons: dict[str, Person] = {}
        self.of_record: dict[str, Person] = {}
        # Patient key -> (gender, birth date, kelurahan codes, deceased at)
        patients: dict[str, tuple[Any, ...]] = {}
        for key, *demographics in rows(
            "measure_patient", "key", "gender", "birth_date", "kelurahan", "deceased_at"
        ):
            patients[key] = tuple(demographics)
        person_rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for key, active, *rest in rows(
            "measure_person", "key", "active", "gender", "birth_date", "kelurahan", "patient"
        ):
            if active is False:
                continue
            person_rows[key].append(tuple(rest))
        for key in sorted(person_rows):
            person = Person(key)
            first = person_rows[key][0]
            for *_, target in person_rows[key]:
                if target and target not in self.of_record:  # a record counts for one person
                    person.records.append(target)
                    self.of_record[target] = person
            recs = [patients[r] for r in person.records if r in patients]
            gender, birth, village = first[0], first[1], first[2]
            person.gender = gender or _agreed(r[0] for r in recs)
            person.birth = local_date(birth) or _agreed(local_date(r[1]) for r in recs)
            person.kelurahan = self._village(village) or _agreed(self._village(r[2]) for r in recs)
            person.death = self._death(recs)
            self.persons[key] = person
        for key, (gender, birth, village, _) in patients.items():
            if key in self.of_record:
                continue
            person = Person(
                key,
                gender=gender,
                birth=local_date(birth),
                kelurahan=self._village(village),
                death=self._death([patients[key]]),
                records=[key],
            )
            self.persons[key] = person
            self.of_record[key] = person

    def _village(self, codes: Any) -> str | None:
        codes = [c for c in codes or [] if isinstance(c, str)]
        return next((c for c in codes if self.resident.fullmatch(c)), codes[0] if codes else None)

    @staticmethod
    def _death(records: list[tuple[Any, ...]]) -> date | None:
        days = [d for d in (local_date(r[3]) for r in records) if d is not None]
        return min(days) if days else None

    def person_of(self, patient: str | None) -> Person | None:
        return self.of_record.get(patient) if patient else None

    def __iter__(self) -> Iterator[Person]:
        return iter(self.persons.values())


def load_events(people: People, rows: Rows) -> list[Event]:
    """Every event, attached to its person; the list of all encounter events is returned (the
    facility indicators count encounters whoever they belong to)."""
    # key -> (codes, subject, when): only what is used, not the row (1.5 million in a large city)
    conditions: dict[str, tuple[list[Any], str | None, Any]] = {}
    in_encounter: dict[str, list[str]] = defaultdict(list)
    for key, codes, subject, recorded, onset, encounter in rows(
        "measure_condition", "key", "codes", "subject", "recorded", "onset", "encounter"
    ):
        conditions[key] = (codes or [], subject, recorded or onset)
        if encounter:
            in_encounter[encounter].append(key)
    listed: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for i, (encounter, condition, rank) in enumerate(
        rows("measure_encounter_diagnosis", "encounter", "condition", "rank")
    ):
        if condition:
            listed[encounter].append((rank if isinstance(rank, int) else 1 << 30, i, condition))
    encounters: list[Event] = []
    seen_conditions: set[str] = set()
    none: tuple[Any, ...] = ()
    person_of = people.of_record.get
    for key, subject, start, provider, reasons in rows(
        "measure_encounter", "key", "subject", "start", "provider", "reason_codes"
    ):
        moment = local_moment(start)
        if moment is None:
            continue
        codes = {c for c in reasons if isinstance(c, str)} if reasons else set()
        first_dx = None
        diagnoses = listed.get(key, none)
        if len(diagnoses) > 1:
            diagnoses = sorted(diagnoses)
        for _, _, cond in diagnoses:
            found = conditions.get(cond)
            cond_codes = found[0] if found is not None else none
            codes.update(cond_codes)
            seen_conditions.add(cond)
            if first_dx is None and cond_codes:
                first_dx = cond_codes[0]
        for cond in in_encounter.get(key, none):
            codes.update(conditions[cond][0])
            seen_conditions.add(cond)
        if first_dx is None and reasons:
            first_dx = reasons[0]
        event = Event(key, *moment, codes, True, provider, first_dx)
        encounters.append(event)
        person = person_of(subject) if subject else None
        if person is not None:
            person.events.append(event)
    for key, (cond_codes, subject, when) in conditions.items():
        if not cond_codes or key in seen_conditions:
            continue
        moment = local_moment(when)
        person = people.person_of(subject)
        if moment is None or person is None:
            continue
        person.events.append(Event(key, *moment, set(cond_codes), False))
    for person in people:
        person.events.sort(key=_ORDER)
    return encounters


def load_measurements(people: People, rows: Rows) -> None:
    code_sets: dict[int, tuple[Any, frozenset[str]]] = {}
    for key, subject, effective, codes, value, encounter in rows(
        "measure_observation", "key", "subject", "effective", "codes", "value", "encounter"
    ):
        person = people.person_of(subject)
        if person is None:
            continue
        moment = local_moment(effective)
        if moment is None:
            continue
        person.measurements.append(
            Measurement(
                key,
                *moment,
                _codes(code_sets, codes),
                float(value) if isinstance(value, int | float) else None,
                encounter,
            )
        )
    for person in people:
        person.measurements.sort(key=_ORDER)


_ORDER = attrgetter("day", "instant", "key")  # of a person's events and measurements


def _codes(known: dict[int, tuple[Any, frozenset[str]]], codes: Any) -> frozenset[str]:
    """The codes of a row as a set shared by the rows with the same list: the view's rows share
    the list decoded from the same text (a few dozen distinct lists in millions of rows), so
    the list itself is the key, kept beside its set so that its id is not reused."""
    found = known.get(id(codes))
    if found is not None and found[0] is codes:
        return found[1]
    if len(known) >= _CODES_KEPT:
        known.clear()
    made = frozenset(c for c in codes or () if isinstance(c, str))
    known[id(codes)] = (codes, made)
    return made


_CODES_KEPT = 100_000


def load_doses(people: People, rows: Rows) -> None:
    for patient, occurrence, cvx in rows("measure_immunization", "patient", "occurrence", "cvx"):
        person = people.person_of(patient)
        day = local_date(occurrence)
        if person is None or day is None:
            continue
        person.doses.append(Dose(day, frozenset(cvx or [])))
