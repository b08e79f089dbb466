"""The generator's own model of the synthetic city: persons and the clinical events that happen
to them. Ground truth (record → person, indicator values) is computed from this model; the
source emitters only render it, with each source's recording errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

# Observation tuple: (loinc, value, ucum unit). Qualitative lab results use value 1.0 (positive)
# or 0.0 (negative) and unit "" (rendered as a coded value).
Obs = tuple[str, float, str]
# Immunization tuple: (cvx, dose number).
Imm = tuple[str, int]


@dataclass(slots=True)
class Encounter:
    """One contact of a person with a facility, in local Baubau time (WITA, UTC+8)."""

    start: datetime
    end: datetime
    facility: str  # facility code: PKM01..PKM17 or RSUD01
    klass: str  # v3 ActCode: AMB, IMP, EMER, HH
    kind: str  # generator label: anc, delivery, kn, growth, screening, ncd, visit, ...
    dx: tuple[str, ...]  # ICD-10 codes, first is the primary diagnosis
    obs: list[Obs] = field(default_factory=list)
    imm: list[Imm] = field(default_factory=list)
    died: bool = False  # the person died during this encounter
    seq: int = 0  # city-wide sequence number, set when events are sorted


@dataclass(slots=True)
class Person:
    pid: int
    household: int
    sex: str  # "male" | "female"
    birth: date
    prefix: str  # "", "La", "Wa", "La Ode", "Wa Ode"
    given: str
    family: str  # "" when the person has a single name (common)
    group: str  # buton | muslim | christian | chinese
    kelurahan: str  # 10-digit Kemendagri code of residence
    street: str
    rt: str
    rw: str
    phone: str | None
    nik: str | None
    nik_issued: date | None  # newborns get a NIK some weeks or months after birth
    bpjs: str | None
    mother: int | None = None
    father: int | None = None
    multiple_birth: int = 0  # 0 single birth, 1/2 order of a twin
    moved_in: date | None = None  # arrived in Baubau during the window
    moved_out: date | None = None  # left Baubau during the window
    death: date | None = None
    marital: str = "S"  # v3 MaritalStatus: S, M, W
    ihs: str | None = None
    chronic: dict[str, date] = field(default_factory=dict)  # ICD-10 → diagnosis date
    events: list[Encounter] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.prefix, self.given, self.family) if p)


@dataclass(slots=True)
class Pregnancy:
    """Kept for the statistics; the events it causes sit on the mother and child."""

    mother: int
    lmp: date
    end: date | None  # None while ongoing at "today"
    outcome: str  # live | twins | abortion | ongoing
    place: str  # facility code or "home"
