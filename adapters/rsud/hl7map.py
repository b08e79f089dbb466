"""Parsed HL7 v2 messages to FHIR resources, by the tables in ``mappings/rsud/``.

The field-to-element assignments (segment maps), what each message type becomes (message maps)
and every code table are data; this module holds the datatype maps (CX -> Identifier, XPN ->
HumanName, XAD -> Address, XTN -> ContactPoint, CWE -> CodeableConcept, DTM -> dateTime, ...)
and the parts of the guide that are structure rather than table: which OBX belongs to which OBR,
an OBX value by its value type, reference ranges, an event's Encounter status history.

Ids are derived, so a message sent again (or the same visit from another channel) stores its
resources once: an Encounter's id is the name-based UUID (v5) of its visit identifier
``http://sys-ids.kemkes.go.id/encounter/<SATUSEHAT org id>|<PV1-19>`` exactly as the Puskesmas
adapter derives it; the visit's Conditions are ``<visit>|Condition|<n>`` (DG1 order, from 0);
results and vaccinations are derived from their order numbers and codes.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.rsud.hl7 import Parsed, Rep, Segment
from adapters.rsud.mapping import Facility, FieldMap, Mappings
from fhirhub.errors import Issue
from fhirhub.ingest.terminology import ConceptMaps

ENCOUNTER_SYSTEM = "http://sys-ids.kemkes.go.id/encounter/"
IDS = uuid.UUID("6a1b7c52-3f0e-4c1f-9d6e-2b8f0c5e7a11")  # the Puskesmas adapter's namespace
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CATEGORY_OBS = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
MERGE = "https://fhirhub.baubaukota.go.id/OperationDefinition/Patient-merge"
_DTM = re.compile(r"^(\d{4})(\d\d)?(\d\d)?(\d\d)?(\d\d)?(\d\d)?(\.\d{1,6})?\s*([+-]\d{4})?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(IDS, "|".join(parts)))


def encounter_id(system: str, value: str) -> str:
    """The Encounter id of a visit identifier, as every channel derives it."""
    return derived_id(f"{system}|{value}", "Encounter")


# --- primitive datatype maps -----------------------------------------------------------------


def dtm(value: str, clock: str) -> str | None:
    """HL7 DTM/TS ``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+ZZZZ]`` -> FHIR dateTime (a time without a zone
    is the facility's clock); None when it is not a date."""
    m = _DTM.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    if (month and not 1 <= int(month) <= 12) or (day and not 1 <= int(day) <= 31):
        return None
    if hour is None:
        return "-".join(p for p in (year, month, day) if p)
    if not (month and day) or int(hour) > 23 or int(minute or 0) > 59 or int(second or 0) > 59:
        return None
    offset = f"{zone[:3]}:{zone[3:]}" if zone else clock
    return f"{year}-{month}-{day}T{hour}:{minute or '00'}:{second or '00'}{frac or ''}{offset}"


def date(value: str) -> str | None:
    out = dtm(value[:8], "") if value else None
    return out if out and "T" not in out else None


def instant(value: str, clock: str) -> str | None:
    out = dtm(value, clock)
    return out if out and "T" in out else None


# --- the mapper ------------------------------------------------------------------------------


class Mapper:
    """Maps one parsed message for one facility; collects issues rather than stopping at the
    first, so that an AE names every field that was wrong."""

    def __init__(
        self, mappings: Mappings, facility: Facility, maps: ConceptMaps, parsed: Parsed
    ) -> None:
        self.m = mappings
        self.facility = facility
        self.maps = maps
        self.parsed = parsed
        self.issues: list[Issue] = []
        self.merges: list[Any] = []  # fhirhub.ingest.adapters.Merge, from an ADT^A40

    def issue(self, code: str, text: str, where: str) -> None:
        self.issues.append(Issue(code, text, (where,)))

    # datatype maps ---------------------------------------------------------------------------

    def convert(self, fm: FieldMap, rep: Rep, seg: Segment) -> Any:
        t = fm.type
        where = seg.where(fm.field)
        if t == "string":
            return rep.get(1) or None
        if t == "code":
            value = rep.get(1)
            found = self.m.table(fm.table).lookup(value) if fm.table else value
            return found if found else None
        if t == "date":
            out = date(rep.get(1))
            if out is None:
                self.issue("value", f"'{rep.get(1)[:30]}' is not an HL7 date", where)
            return out
        if t in ("dateTime", "instant"):
            raw = rep.get(1)
            out = (
                dtm(raw, self.facility.clock)
                if t == "dateTime"
                else instant(raw, self.facility.clock)
            )
            if out is None:
                self.issue("value", f"'{raw[:30]}' is not an HL7 date/time", where)
            return out
        if t == "boolean":
            v = rep.get(1).upper()
            return True if v == "Y" else False if v == "N" else None
        if t == "integer":
            v = rep.get(1)
            return int(v) if v.isdigit() and int(v) < 2**31 else None
        if t == "CX":
            return self.identifier(rep, where)
        if t == "CX-external":
            # PID-2 (2.3, 2.4): without a type or an assigning authority it is nobody's known
            # number, least of all the sender's record number: kept without a system
            if rep.get(4).strip() or rep.get(5).strip():
                return self.identifier(rep, where)
            value = rep.get(1).strip()
            return {"value": value} if value else None
        if t == "SSN":
            return self.identifier(Rep([[rep.get(1)], [], [], ["DUKCAPIL"], ["NNIDN"]]), where)
        if t == "EI":
            value = rep.get(1)
            if not value:
                return None
            authority = rep.get(2) or rep.get(3) or self.facility.code
            return {"system": f"urn:hl7v2:order:{authority.lower()}", "value": value}
        if t == "XPN":
            return human_name(rep)
        if t == "XAD":
            return address(rep)
        if t == "XTN":
            return contact_point(rep, fm.use)
        if t == "CWE":
            if fm.table:
                return self.table_concept(fm.table, rep.get(1), rep.get(2))
            return self.concept(rep, where, required=False)
        if t == "coding":
            found = self.m.table(fm.table).lookup(rep.get(1)) if fm.table else None
            if not found:
                return None
            return {"system": self.m.table(fm.table).system, **found}  # type: ignore[arg-type]
        if t == "coding-concept":
            coding = self.convert(FieldMap(fm.field, fm.to, "coding", fm.table), rep, seg)
            return {"coding": [coding]} if coding else None
        if t == "PL":
            return self.location(rep)
        if t == "XCN":
            return self.participant(rep, fm.role or "PART")
        raise ValueError(f"unknown datatype map {t}")

    def table_concept(self, table: str, code: str, text: str = "") -> dict[str, Any] | None:
        found = self.m.table(table).lookup(code)
        if not found:
            return None
        coding = {"system": self.m.table(table).system, **found}
        out: dict[str, Any] = {"coding": [coding]}
        if text:
            out["text"] = text
        return out

    def coding_system(self, name: str) -> tuple[str, bool]:
        """(FHIR system, is local) of a CWE's coding system name."""
        standard = self.m.table("coding-systems").lookup(name)
        if standard and name:
            return str(standard), False
        local = self.facility.local_systems.get(name.upper())
        if local:
            return local, True
        return f"urn:hl7v2:{name.lower()}", True

    def concept(self, rep: Rep, where: str, *, required: bool) -> dict[str, Any] | None:
        """CWE/CE -> CodeableConcept: the identifier and the alternate identifier; local codes
        translated (standard coding first, the local one kept). ``required``: a local code
        without a translation is an issue (the message waits for its mapping)."""
        codings: list[dict[str, Any]] = []
        untranslated: list[tuple[str, str]] = []
        standard_found = False
        for first in (1, 4):
            code = rep.get(first)
            if not code:
                continue
            system, local = self.coding_system(rep.get(first + 2))
            coding: dict[str, Any] = {"system": system, "code": code}
            if rep.get(first + 1):
                coding["display"] = rep.get(first + 1)
            if not local:
                standard_found = True
                codings.append(coding)
                continue
            target = self.translate(system, code)
            if target is not None:
                standard_found = True
                codings.append(target)
            else:
                untranslated.append((system, code))
            codings.append(coding)
        if required and untranslated and not standard_found:
            system, code = untranslated[0]
            self.issue(
                "code-invalid",
                f"Local code '{code}' of {system} has no translation in the mapping of "
                f"{self.facility.code}",
                where,
            )
        if not codings:
            return {"text": rep.get(2)} if rep.get(2) else None
        # standard codings before local ones
        codings.sort(
            key=lambda c: (
                0 if not str(c["system"]).startswith(("urn:hl7v2", "https://fhirhub")) else 1
            )
        )
        out: dict[str, Any] = {"coding": _unique(codings)}
        text = rep.get(2) or rep.get(5)
        if text:
            out["text"] = text
        return out

    def translate(self, system: str, code: str) -> dict[str, Any] | None:
        extra = self.facility.local_codes.get((system, code))
        if extra:
            found: tuple[str, str, str | None] | None = (
                extra.target_system,
                extra.target_code,
                extra.target_display,
            )
        else:
            found = self.maps.translate(list(self.facility.concept_maps), system, code)
        if found is None:
            return None
        out = {"system": found[0], "code": found[1]}
        if found[2]:
            out["display"] = found[2]
        return out

    def identifier(self, rep: Rep, where: str) -> dict[str, Any] | None:
        value = rep.get(1).strip()
        if not value:
            return None
        id_type = rep.get(5).strip().upper()
        authority = rep.get(4).strip().upper()
        for rule in self.m.identifier_rules:
            if rule.type not in ("*", id_type) or rule.authority not in ("*", authority):
                continue
            if rule.system == "mrn":
                if not authority or authority in self.facility.mrn_authorities:
                    system = self.facility.mrn_system
                else:
                    system = f"urn:hl7v2:mrn:{authority.lower()}"
                out: dict[str, Any] = {
                    "use": "usual",
                    "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                    "system": system,
                    "value": value,
                }
                return out
            return {"use": "official", "system": rule.system, "value": value}
        out = {"value": value}
        if id_type:
            out["type"] = {"coding": [{"system": V2_0203, "code": id_type}]}
        if authority:
            out["assigner"] = {"display": rep.get(4)}
        return out

    def location(self, rep: Rep) -> dict[str, Any] | None:
        parts = [rep.get(1), rep.get(2), rep.get(3)]
        label = " / ".join(p for p in parts if p)
        if not label:
            return None
        loc: dict[str, Any] = {"display": label}
        if self.facility.location:
            loc["reference"] = self.facility.location
        return {"location": loc}

    def participant(self, rep: Rep, role: str) -> dict[str, Any] | None:
        ident, family, given = rep.get(1), rep.get(2), rep.get(3)
        name = " ".join(p for p in (rep.get(6), given, family) if p)
        if not (ident or name):
            return None
        individual: dict[str, Any] = {}
        if name:
            individual["display"] = name
        if ident:
            authority = rep.get(9) or self.facility.code
            individual["identifier"] = {
                "system": f"urn:hl7v2:staff:{authority.lower()}",
                "value": ident,
            }
        return {
            "type": [{"coding": [{"system": PARTICIPATION, "code": role}]}],
            "individual": individual,
        }

    # segment maps ----------------------------------------------------------------------------

    def apply(self, seg: Segment, resource: dict[str, Any]) -> dict[str, Any]:
        """Fill ``resource`` from ``seg`` by its segment map."""
        smap = self.m.segments.get(seg.name)
        if smap is None:
            return resource
        for fm in smap.fields:
            reps = seg.reps(fm.field)
            if not reps:
                continue
            if fm.only_if_missing and _get(resource, fm.to) is not None:
                continue
            values = [
                v
                for v in (self.convert(fm, r, seg) for r in (reps if fm.many else reps[:1]))
                if v is not None
            ]
            if not values:
                continue
            if fm.replaces:
                _pop(resource, fm.replaces)
            if fm.many:
                existing = _get(resource, fm.to) or []
                _set(resource, fm.to, _unique([*existing, *values]))
                if fm.to == "identifier":
                    _set(resource, fm.to, _without_echoes(_get(resource, fm.to)))
            else:
                _set(resource, fm.to, values[0])
        return resource


# --- structural datatype maps ----------------------------------------------------------------


# XPN-7 (HL7 table 0200) -> HumanName.use, after the v2-to-FHIR guide's ConceptMap: an alias or
# assigned name (A), a name at birth (B) and the others it leaves unmapped get no use.
NAME_USE = {
    "L": "official",
    "D": "usual",
    "M": "maiden",
    "N": "nickname",
    "S": "anonymous",
    "TEMP": "temp",
    "BAD": "old",
    "NOUSE": "old",
}


def human_name(rep: Rep) -> dict[str, Any] | None:
    family, given, middle = rep.get(1), rep.get(2), rep.get(3)
    out: dict[str, Any] = {}
    if family:
        out["family"] = family
    names = [n for n in (given, middle) if n]
    if names:
        out["given"] = names
    if rep.get(5):
        out["prefix"] = [rep.get(5)]
    if rep.get(4):
        out["suffix"] = [rep.get(4)]
    if not out:
        return None
    text = " ".join([*names, family] if family else names)
    if text:
        out["text"] = text
    use = NAME_USE.get(rep.get(7).upper())
    if use:
        out["use"] = use
    return out


def address(rep: Rep) -> dict[str, Any] | None:
    lines = [x for x in (rep.get(1), rep.get(2)) if x]
    out: dict[str, Any] = {}
    if lines:
        out["line"] = lines
    if rep.get(3):
        out["city"] = rep.get(3)
    if rep.get(4):
        out["state"] = rep.get(4)
    if rep.get(5):
        out["postalCode"] = rep.get(5)
    if rep.get(6):
        out["country"] = rep.get(6)
    if rep.get(8):  # other geographic designation: where Indonesian senders put the kelurahan
        out["district"] = rep.get(8)
    if rep.get(9):
        out.setdefault("district", rep.get(9))
    if not out:
        return None
    out["text"] = ", ".join(
        x for x in (*lines, rep.get(8) and f"Kel. {rep.get(8)}", rep.get(3), rep.get(4)) if x
    )
    kind = rep.get(7).upper()
    if kind in ADDRESS_USE:
        out["use"] = ADDRESS_USE[kind]
    if kind in ("M", "SH"):  # mailing, shipping
        out["type"] = "postal"
    return out


# XAD-7 (HL7 table 0190) -> Address.use, after the v2-to-FHIR guide's ConceptMap
ADDRESS_USE = {"H": "home", "O": "work", "B": "work", "C": "temp", "BA": "old", "BI": "billing"}


def contact_point(rep: Rep, use: str | None) -> dict[str, Any] | None:
    value = rep.get(1)
    equipment = rep.get(3).upper()
    if equipment == "INTERNET" or rep.get(2).upper() == "NET":
        value = rep.get(4) or value
        system = "email"
    else:
        if not value:  # 2.5+: country^area^local in components 5-7
            value = "".join(x for x in (rep.get(5), rep.get(6), rep.get(7)) if x)
        system = {"CP": "phone", "FX": "fax", "BP": "pager"}.get(equipment, "phone")
    if not value:
        return None
    out: dict[str, Any] = {"system": system, "value": value}
    if equipment == "CP":
        out["use"] = "mobile"
    elif use:
        out["use"] = use
    return out


def reference_range(text: str, unit: dict[str, Any] | None) -> dict[str, Any] | None:
    raw = text.strip()
    if not raw:
        return None

    def quantity(number: str) -> dict[str, Any]:
        q: dict[str, Any] = {"value": _decimal(number)}
        if unit:
            q.update(unit)
        return q

    m = re.fullmatch(r"([+-]?[\d.]+)\s*[-–]\s*([+-]?[\d.]+)", raw)
    if m and _NUMBER.match(m.group(1)) and _NUMBER.match(m.group(2)):
        return {"low": quantity(m.group(1)), "high": quantity(m.group(2)), "text": raw}
    m = re.fullmatch(r"(<=?|>=?)\s*([+-]?[\d.]+)", raw)
    if m and _NUMBER.match(m.group(2)):
        key = "high" if m.group(1).startswith("<") else "low"
        return {key: quantity(m.group(2)), "text": raw}
    return {"text": raw}


def _decimal(text: str) -> float | int:
    d = Decimal(text)
    return int(d) if d == d.to_integral_value() and "." not in text else float(d)


def number(text: str) -> float | int | None:
    t = text.strip().replace(",", ".") if text.count(",") == 1 and "." not in text else text.strip()
    if not _NUMBER.match(t):
        return None
    try:
        return _decimal(t)
    except InvalidOperation:
        return None


# --- small helpers ---------------------------------------------------------------------------


def _unique(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _without_echoes(identifiers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Identifiers less those without a system whose value another one gives with its system."""
    known = {i.get("value") for i in identifiers if i.get("system")}
    return [i for i in identifiers if i.get("system") or i.get("value") not in known]


def _get(node: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _set(node: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _pop(node: dict[str, Any], path: str) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.get(key, {})
    if isinstance(node, dict):
        node.pop(keys[-1], None)
