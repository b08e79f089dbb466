"""``$evaluate-measure``: http://hl7.org/fhir/R4/measure-operation-evaluate-measure.html

``Measure/{id}/$evaluate-measure`` evaluates one Measure of the catalogue for a period into a
MeasureReport; ``Measure/$evaluate-measure`` evaluates them all into a Bundle of reports, reading
the data once. Each group carries its populations (``measure-population`` codes), the score where
a denominator exists, and its stratifiers; ``reportType=subject-list`` adds, per population, a
contained ``List`` of the persons counted.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from fhirhub.errors import bad_request, not_found
from fhirhub.model.instant import now_us, to_instant
from fhirhub.runtime import collector_paused
from fhirhub.services.measures import facility as fac_rules
from fhirhub.services.measures.catalogue import (
    BASE,
    POPULATION_SYSTEM,
    Catalogue,
    CatalogueError,
    MeasureDef,
    load_catalogue,
)
from fhirhub.services.measures.codes import band_label, bounds, within
from fhirhub.services.measures.people import (
    People,
    Person,
    load_doses,
    load_events,
    load_measurements,
)
from fhirhub.services.measures.period import Period, age_years, parse_period
from fhirhub.services.measures.population import PopRow, stratum_filter, table_for
from fhirhub.services.measures.rules import PERSON_RULES
from fhirhub.services.measures.source import Tuples, view_rows

ALLOWED = {"periodStart", "periodEnd", "reportType", "subject", "organization"}
IGNORED = {"_format", "_pretty"}
REPORT_TYPES = {
    "summary": "summary",
    "population": "summary",
    "subject-list": "subject-list",
    "subject": "individual",
}
STRATUM_SYSTEMS = {
    "kelurahan": BASE + "/CodeSystem/kelurahan",
    "puskesmas": BASE + "/sid/facility",
    "facility": BASE + "/sid/facility",
    "sex": "http://hl7.org/fhir/administrative-gender",
    "category": "http://hl7.org/fhir/sid/icd-10",
}
STRATIFIER_SYSTEM = BASE + "/CodeSystem/measure-stratifier"
GROUP_SYSTEM = BASE + "/CodeSystem/measure-group"
ALERT_URL = BASE + "/StructureDefinition/measure-alert"
TABLE_URL = BASE + "/StructureDefinition/measure-population-table"
FACILITY_RULES = {"top-diagnoses", "weekly-surveillance", "reporting-completeness"}


@dataclass(frozen=True)
class Options:
    period: Period
    report_type: str  # summary | subject-list | individual
    subject: str | None  # Patient/… or Person/…
    organization: str | None  # Organization/… or a facility code


def parse_options(params: Sequence[tuple[str, str]]) -> Options:
    seen: dict[str, str] = {}
    for name, value in params:
        if name in IGNORED:
            continue
        if name not in ALLOWED:
            raise bad_request(f"parameter '{name}' is not supported by $evaluate-measure", name)
        if name in seen:
            raise bad_request(f"parameter '{name}' is given more than once", name)
        seen[name] = value
    period = parse_period(seen.get("periodStart"), seen.get("periodEnd"))
    rtype = seen.get("reportType", "summary")
    if rtype not in REPORT_TYPES:
        raise bad_request(
            f"reportType {rtype!r} is not one of {', '.join(sorted(REPORT_TYPES))}", "reportType"
        )
    subject = seen.get("subject") or None
    if subject is not None and not re.fullmatch(r"(Patient|Person)/[A-Za-z0-9\-.]{1,64}", subject):
        raise bad_request(
            f"subject {subject!r} is not a reference to a Patient or Person (Patient/id)", "subject"
        )
    if rtype == "subject" and subject is None:
        raise bad_request("reportType 'subject' needs a subject", "subject", "required")
    org = seen.get("organization") or None
    if org is not None and not re.fullmatch(r"(Organization/)?[A-Za-z0-9\-.]{1,64}", org):
        raise bad_request(
            f"organization {org!r} is not a reference to an Organization", "organization"
        )
    return Options(period, REPORT_TYPES[rtype], subject, org)


class Dataset:
    """The rows the catalogue's views give over the store, each view read once, and the persons
    and events built from them (each built once, when a measure first needs it)."""

    def __init__(
        self,
        catalogue: Catalogue,
        rows: Callable[[Mapping[str, Any]], Tuples],
    ) -> None:
        self.catalogue = catalogue
        self._read = rows
        self._people: People | None = None
        self._loaded: set[str] = set()
        self.encounters: list[Any] = []
        self._orgs: dict[str, tuple[str | None, bool]] | None = None
        self._residents: dict[str, list[tuple[Person, str | None]]] = {}

    def residents(self, resident: str) -> list[tuple[Person, str | None]]:
        """The persons living in the city (village code ``resident`` + 6 digits) with a birth
        date, each with the Puskesmas of its kelurahan (found once, for every measure)."""
        if resident not in self._residents:
            people = self.people(resident)
            self._residents[resident] = [
                (p, self.catalogue.puskesmas.get(p.kelurahan))
                for p in people
                if p.birth is not None
                and p.kelurahan is not None
                and people.resident.fullmatch(p.kelurahan)
            ]
        return self._residents[resident]

    def rows(self, name: str, *columns: str) -> Iterator[tuple[Any, ...]]:
        """The values of ``columns`` (two or more) in each row of the catalogue's view ``name``,
        streamed: each consumer (persons, events, measurements, doses, organisations) reads a
        view once, to the end, and keeps only what it builds from the rows (a large city's
        rows would not fit in memory)."""
        names, rows = self._read(self.catalogue.view_named(name))
        try:
            missing = [c for c in columns if c not in names]
            if missing:
                raise CatalogueError(
                    f"the view {name} has no column {missing[0]!r}", f"ViewDefinition/{name}"
                )
            pick = itemgetter(*(names.index(c) for c in columns))
            for row in rows:
                yield pick(row)
        finally:
            rows.close()

    def people(self, resident: str) -> People:
        if self._people is None:
            self._people = People(self.rows, re.compile(re.escape(resident) + r"\d{6}"))
        return self._people

    def need(self, what: str, resident: str) -> None:
        if what in self._loaded:
            return
        people = self.people(resident)
        if what == "events":
            self.encounters = load_events(people, self.rows)
        elif what == "measurements":
            load_measurements(people, self.rows)
        elif what == "doses":
            load_doses(people, self.rows)
        self._loaded.add(what)

    @property
    def orgs(self) -> dict[str, tuple[str | None, bool]]:
        """Organization key -> (facility code, is a health care provider)."""
        if self._orgs is None:
            self._orgs = {
                key: (facility, bool(provider))
                for key, facility, provider in self.rows(
                    "measure_organization", "key", "facility", "provider"
                )
            }
        return self._orgs

    def facility_of(self, org: str | None) -> str | None:
        if not org:
            return None
        code = self.orgs.get(org, (None, False))[0]
        return code or org.partition("/")[2]


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _score(counts: Mapping[str, int]) -> dict[str, Any] | None:
    den = counts.get("denominator")
    if not den:
        return None
    return {"value": round(counts.get("numerator", 0) / den, 6)}


def _populations(
    codes: Sequence[str],
    counts: Mapping[str, int],
    lists: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    out = []
    for code in codes:
        if code not in counts:
            continue  # a P-kind denominator with no population table
        pop: dict[str, Any] = {
            "code": _coding(POPULATION_SYSTEM, code),
            "count": counts[code],
        }
        if lists and code in lists:
            pop["subjectResults"] = {"reference": "#" + lists[code]}
        out.append(pop)
    return out


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    strata: dict[str, dict[str, dict[str, int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    )
    subjects: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


class Evaluator:
    def __init__(self, catalogue: Catalogue, data: Dataset, options: Options) -> None:
        self.catalogue = catalogue
        self.data = data
        self.options = options
        self.period = options.period

    def _organization_code(self) -> str | None:
        org = self.options.organization
        if org is None:
            return None
        if org.startswith("Organization/"):
            found = self.data.orgs.get(org)
            if found is None:
                raise not_found(f"{org} is not known")
            return found[0] or org.partition("/")[2]
        return org

    def report(self, m: MeasureDef) -> dict[str, Any]:
        self.table_used: str | None = None
        only = self._organization_code()
        if m.rule in FACILITY_RULES:
            groups, contained = self._facility_groups(m, only)
        else:
            groups, contained = self._person_groups(m, only)
        report: dict[str, Any] = {"resourceType": "MeasureReport"}
        if contained:
            report["contained"] = contained
        if self.table_used is not None:
            report["extension"] = [{"url": TABLE_URL, "valueString": self.table_used}]
        report.update(
            {
                "status": "complete",
                "type": self.options.report_type,
                "measure": m.url + (f"|{m.version}" if m.version else ""),
            }
        )
        if self.options.subject:
            report["subject"] = {"reference": self.options.subject}
        report["date"] = to_instant(now_us())
        if self.options.organization and only:
            ref = self.options.organization
            report["reporter"] = (
                {"reference": ref, "display": only}
                if ref.startswith("Organization/")
                else {"identifier": {"system": STRATUM_SYSTEMS["facility"], "value": only}}
            )
        report["period"] = {
            "start": self.period.start.isoformat(),
            "end": self.period.end.isoformat(),
        }
        report["group"] = groups
        return report

    # --- persons ----------------------------------------------------------------------------

    def _subject_person(self, people: People) -> Person | None:
        subject = self.options.subject
        if subject is None:
            return None
        found = people.persons.get(subject) or people.person_of(subject)
        if found is None:
            raise not_found(f"subject {subject} is not known")
        return found

    def _person_groups(
        self, m: MeasureDef, only: str | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rule = PERSON_RULES.get(m.rule)
        if rule is None:
            raise bad_request(
                f"Measure {m.id} has the unknown rule {m.rule!r}", "Measure.extension"
            )
        resident = str(m.value("resident-prefix", "7472"))
        views = {v.rsplit("/", 1)[-1] for v in m.views}
        people = self.data.people(resident)
        if {"measure_encounter", "measure_condition"} & views:
            self.data.need("events", resident)
        if "measure_observation" in views:
            self.data.need("measurements", resident)
        if "measure_immunization" in views:
            self.data.need("doses", resident)
        if "measure_organization" in views:
            context = {"providers": {k for k, (_, prov) in self.data.orgs.items() if prov}}
        else:
            context = {"providers": set()}
        bands = [bounds(b) for b in str(m.value("age-bands", "0-4")).split(",")]
        subject = self._subject_person(people)
        tallies: dict[str | None, _Tally] = defaultdict(_Tally)
        ps, pe = self.period.start, self.period.end
        candidates = self.data.residents(resident)  # born, living in the city
        if subject is not None:
            candidates = [(p, pkm) for p, pkm in candidates if p is subject]
        for p, pkm in candidates:
            assert p.birth is not None and p.kelurahan is not None
            if p.birth > pe or (p.death is not None and p.death < ps):
                continue
            if only is not None and pkm != only:
                continue
            found = rule(m, p, self.period, context)
            if not found:
                continue
            age = age_years(p.birth, pe)
            band = next((band_label(b) for b in bands if within(age, b)), "unknown")
            keys = {
                "kelurahan": p.kelurahan,
                "puskesmas": pkm or "unknown",
                "sex": p.gender or "unknown",
                "age-group": band,
            }
            for group_code, pops in found.items():
                tally = tallies[group_code]
                for pop in pops:
                    tally.counts[pop] += 1
                    tally.subjects[pop].append(p.key)
                    for stratifier, value in keys.items():
                        tally.strata[stratifier][value][pop] += 1
        self._projected = self._projection(m, resident, only)
        groups = []
        contained: list[dict[str, Any]] = []
        for g in m.groups:
            tally = tallies.get(g.code) or _Tally()
            counts = {c: tally.counts.get(c, 0) for c in g.populations if c != "denominator"}
            if "denominator" in g.populations:
                den = self._denominator(m, tally.counts, None, None)
                if den is not None:
                    counts["denominator"] = den
            lists: dict[str, str] = {}
            if self.options.report_type in ("subject-list", "individual"):
                for code in counts:
                    list_id = f"{g.code + '-' if g.code else ''}{code}"
                    lists[code] = list_id
                    listed: dict[str, Any] = {
                        "resourceType": "List",
                        "id": list_id,
                        "status": "current",
                        "mode": "snapshot",
                        "title": f"{m.id} {g.code or ''} {code}".replace("  ", " "),
                    }
                    entries = [
                        {"item": {"reference": key}} for key in sorted(tally.subjects.get(code, []))
                    ]
                    if entries:
                        listed["entry"] = entries
                    else:
                        listed["emptyReason"] = {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                                    "code": "nilknown",
                                }
                            ]
                        }
                    contained.append(listed)
            group: dict[str, Any] = {}
            if g.code:
                group["code"] = _coding(GROUP_SYSTEM, g.code)
            group["population"] = _populations(g.populations, counts, lists)
            score = _score(counts)
            if score is not None:
                group["measureScore"] = score
            group["stratifier"] = [
                self._stratifier(m, s, g.populations, tally.strata.get(s, {})) for s in g.strata
            ]
            groups.append(group)
        return groups, contained

    def _projection(
        self, m: MeasureDef, resident: str, only: str | None
    ) -> Callable[[Callable[[PopRow], bool], str | None], int | None] | None:
        """For a P-kind measure, the population table's sum over a stratum's rows (None when the
        catalogue has no table for the period or the table cannot give that stratum)."""
        target = m.value("denominator-target", "")
        table = table_for(self.catalogue.populations, self.period.end.year)
        if m.kind != "P" or not target or table is None:
            return None
        if not any(r.target == target for r in table.rows):
            return None
        self.table_used = f"{table.id} ({table.source})"
        of = self.catalogue.puskesmas

        def projected(keep: Callable[[PopRow], bool], needs: str | None) -> int | None:
            if only is not None:
                return (
                    table.denominator(
                        target,
                        lambda r: of.get(r.area) == only and keep(r),
                        needs="kelurahan",
                    )
                    if needs in (None, "kelurahan", "puskesmas")
                    else None
                )
            return table.denominator(
                target, lambda r: r.area.startswith(resident) and keep(r), needs=needs
            )

        return projected

    def _denominator(
        self, m: MeasureDef, counted: Mapping[str, int], name: str | None, value: str | None
    ) -> int | None:
        if m.kind != "P":
            return counted.get("denominator", 0)
        if self._projected is None:
            return None
        if name is None or value is None:
            return self._projected(lambda r: True, None)
        needs = "kelurahan" if name == "puskesmas" else name
        return self._projected(stratum_filter(name, value, self.catalogue.puskesmas), needs)

    def _stratifier(
        self,
        m: MeasureDef,
        name: str,
        codes: Sequence[str],
        strata: Mapping[str, Mapping[str, int]],
    ) -> dict[str, Any]:
        out = []
        for value in sorted(strata):
            found = strata[value]
            counts = {c: found.get(c, 0) for c in codes if c != "denominator"}
            if "denominator" in codes:
                den = self._denominator(m, found, name, value)
                if den is not None:
                    counts["denominator"] = den
            stratum: dict[str, Any] = {"value": self._value(name, value)}
            stratum["population"] = _populations(codes, counts)
            score = _score(counts)
            if score is not None:
                stratum["measureScore"] = score
            out.append(stratum)
        found_strata: dict[str, Any] = {"code": [self._stratifier_code(name)]}
        if out:
            found_strata["stratum"] = out
        return found_strata

    @staticmethod
    def _stratifier_code(name: str) -> dict[str, Any]:
        return {"coding": [{"system": STRATIFIER_SYSTEM, "code": name}], "text": name}

    @staticmethod
    def _value(name: str, value: str) -> dict[str, Any]:
        system = STRATUM_SYSTEMS.get(name)
        if system is None or value == "unknown":
            return {"text": value}
        return {"coding": [{"system": system, "code": value}], "text": value}

    # --- facilities -------------------------------------------------------------------------

    def _facility_groups(
        self, m: MeasureDef, only: str | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if self.options.subject is not None:
            raise bad_request(
                f"Measure {m.id} counts encounters per facility, not persons: no subject",
                "subject",
            )
        self.data.need("events", "7472")
        encs = self.data.encounters
        if m.rule == "top-diagnoses":
            result = fac_rules.top_diagnoses(m, encs, self.period, self.data.facility_of, only)
        elif m.rule == "weekly-surveillance":
            result = fac_rules.weekly_surveillance(
                m, encs, self.period, self.data.facility_of, only
            )
        else:
            result = fac_rules.reporting_completeness(
                m, encs, self.period, self.data.facility_of, only, self.catalogue.puskesmas_codes
            )
        g = m.groups[0]
        group: dict[str, Any] = {"population": _populations(g.populations, result.totals)}
        score = _score(result.totals)
        if score is not None:
            group["measureScore"] = score
        strata = []
        for cell in result.cells:
            stratum: dict[str, Any] = {}
            if cell.alert:
                stratum["extension"] = [{"url": ALERT_URL, "valueBoolean": True}]
            if len(cell.components) == 1:
                name, value = cell.components[0]
                stratum["value"] = self._value(name, value)
            else:
                stratum["component"] = [
                    {"code": self._stratifier_code(name), "value": self._value(name, value)}
                    for name, value in cell.components
                ]
            stratum["population"] = _populations(g.populations, cell.counts)
            score = _score(cell.counts)
            if score is not None:
                stratum["measureScore"] = score
            strata.append(stratum)
        stratifier: dict[str, Any] = {"code": [self._stratifier_code(result.stratifier)]}
        if strata:
            stratifier["stratum"] = strata
        group["stratifier"] = [stratifier]
        return [group], []


def catalogue(directory: Path) -> Catalogue:
    return load_catalogue(directory)


def evaluate(
    conn: Connection, directory: Path, measure_id: str, params: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """The MeasureReport of one Measure of the catalogue in ``directory``."""
    cat = load_catalogue(directory)
    m = cat.measures.get(measure_id)
    if m is None:
        raise not_found(f"Measure/{measure_id} is not known")
    options = parse_options(params)
    data = Dataset(cat, lambda view: view_rows(conn, view))
    with collector_paused():  # persons and events: millions of objects, none in a cycle
        return Evaluator(cat, data, options).report(m)


def evaluate_many(
    conn: Connection,
    directory: Path,
    measure_ids: Sequence[str] | None,
    params: Sequence[tuple[str, str]],
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The MeasureReports of the given Measures (every one when None), the data read once;
    ``progress`` hears each measure's id once it is done."""
    cat = load_catalogue(directory)
    options = parse_options(params)
    if options.subject is not None:
        raise bad_request(
            "Measure/$evaluate-measure over every measure takes no subject; "
            "evaluate one Measure for a subject",
            "subject",
        )
    if measure_ids is None:
        chosen = list(cat.measures.values())
    else:
        unknown = [m for m in measure_ids if m not in cat.measures]
        if unknown:
            raise not_found(f"Measure/{unknown[0]} is not known")
        chosen = [cat.measures[m] for m in measure_ids]
    data = Dataset(cat, lambda view: view_rows(conn, view))
    ev = Evaluator(cat, data, options)
    reports = []
    with collector_paused():  # persons and events: millions of objects, none in a cycle
        for m in chosen:
            reports.append(ev.report(m))
            if progress is not None:
                progress(m.id)
    return reports


def evaluate_all(
    conn: Connection, directory: Path, params: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """A Bundle (collection) of the MeasureReports of every Measure, the data read once."""
    cat = load_catalogue(directory)
    reports = evaluate_many(conn, directory, None, params)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": to_instant(now_us()),
        "entry": [
            {"fullUrl": f"urn:measure-report:{m.id}", "resource": r}
            for m, r in zip(cat.measures.values(), reports, strict=True)
        ],
    }


def data_requirements(directory: Path, measure_id: str) -> dict[str, Any]:
    """``Measure/{id}/$data-requirements``: a Library naming the ViewDefinitions the Measure
    reads and, per resource type, the elements their columns use."""
    cat = load_catalogue(directory)
    m = cat.measures.get(measure_id)
    if m is None:
        raise not_found(f"Measure/{measure_id} is not known")
    paths: dict[str, list[str]] = {}
    for url in m.views:
        view = cat.view(url)
        found = paths.setdefault(str(view.get("resource")), [])
        stack = list(view.get("select") or [])
        while stack:
            select = stack.pop(0)
            for column in select.get("column") or []:
                if column.get("path") not in found:
                    found.append(column["path"])
            stack.extend(select.get("select") or [])
            stack.extend(select.get("unionAll") or [])
    return {
        "resourceType": "Library",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/library-type",
                    "code": "module-definition",
                }
            ]
        },
        "relatedArtifact": [{"type": "depends-on", "resource": url} for url in m.views],
        "dataRequirement": [
            {"type": res_type, "mustSupport": columns} for res_type, columns in paths.items()
        ],
    }
