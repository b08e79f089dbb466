"""A visit read from the RSUD's SIMRS Khanza database in, the canonical transaction Bundle out.

The inbox source is ``khanza``: each message is one visit (a ``reg_periksa`` row) with the rows
read with it, kept as read (``khanza_db.py`` writes them): the patient (``pasien``), the
diagnoses (``diagnosa_pasien`` with ``penyakit``), the procedures (``prosedur_pasien`` with
``icd9``), the payer (``penjab``), the clinic (``poliklinik``) and the patient's region rows
(``kelurahan``, ``kecamatan``, ``kabupaten``, ``propinsi``). The sender is the hospital whose
mapping table (``mappings/rsud/khanza/<code>.yaml``) the message names.

- Patient: a conditional create on the record number (``pasien.no_rkm_medis`` in the
  hospital's ``mrn`` system), with the NIK (``no_ktp``) and the BPJS card (``no_peserta``); the
  kelurahan code found from the name in Khanza's own region table (its keys are not Kemendagri
  codes, national-apis.md C.1).
- Encounter: ``PUT`` under the id derived from its visit identifier
  (``http://sys-ids.kemkes.go.id/encounter/<SATUSEHAT organization id>`` | ``no_rawat``) by the
  rule every channel uses (``fhirhub.ingest.visits``): the same visit from the HL7 v2 feed
  (PV1-19 = ``no_rawat``) or pulled again is the same Encounter.
- Condition per diagnosis (ICD-10), Procedure per procedure (ICD-9-CM), in order of
  ``prioritas``: ``PUT`` under ids derived from the visit identifier and that order.
- Coverage on the BPJS card when the visit's payer is BPJS (``payers`` in the table): a
  conditional create on the card.

A code that is not ICD-10 (a local ``penyakit`` code) rejects the visit with the path of the
diagnosis; the visit waits in the inbox until the table or Khanza is fixed, then is replayed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import yaml

from fhirhub.errors import FhirError, Issue
from fhirhub.ingest import Context, Mapped, Message
from fhirhub.ingest import canonical as c
from fhirhub.ingest.regions import administrative_code
from fhirhub.ingest.stamps import file_stamps
from fhirhub.ingest.visits import (
    bpjs_coverage_entry,
    child_id,
    encounter_id,
    encounter_system,
    put_entry,
)

NAME = "khanza"
CONTENT_TYPE = "application/json"
ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"
_URN = uuid.UUID("0c7f3a4e-9b1d-4e59-8d5a-6f2e1b7c9a30")  # fullUrls of conditional creates

_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_CLASSES = {
    "AMB": {"system": _ACT, "code": "AMB", "display": "ambulatory"},
    "EMER": {"system": _ACT, "code": "EMER", "display": "emergency"},
    "IMP": {"system": _ACT, "code": "IMP", "display": "inpatient encounter"},
}
# reg_periksa.stts -> Encounter.status (Khanza's enum; 'Online' is a booking not yet seen).
_STATUS = {
    "Belum": "arrived",
    "Sudah": "finished",
    "Batal": "cancelled",
    "Berkas Diterima": "finished",
    "Dirujuk": "finished",
    "Meninggal": "finished",
    "Dirawat": "in-progress",
    "Pulang Paksa": "finished",
    "Online": "planned",
}
_DISPOSITION_SYSTEM = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
_DISPOSITION = {
    "Meninggal": ("exp", "Expired"),
    "Dirujuk": ("other-hcf", "Other healthcare facility"),
    "Pulang Paksa": ("aadvice", "Left against advice"),
}
_MARITAL = {"MENIKAH": "M", "BELUM MENIKAH": "U", "JOMBLO": "U", "JANDA": "W", "DUDHA": "W"}
_EMPTY = {"", "-", "0"}  # what Khanza's clerks type for "none"
_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
_TIME = re.compile(r"^\d\d:\d\d:\d\d$")


@dataclass(frozen=True)
class KhanzaMapping:
    """One hospital's Khanza table (``mappings/rsud/khanza/<code>.yaml``)."""

    code: str  # RSUD01
    organization: str
    location: str
    satusehat_organization_id: str
    mrn_system: str
    clock: str
    payers: dict[str, str] = field(default_factory=dict)
    emergency_clinics: frozenset[str] = frozenset()

    @property
    def encounter_system(self) -> str:
        return encounter_system(self.satusehat_organization_id)


def load_mappings(directory: Path) -> dict[str, KhanzaMapping]:
    """The Khanza tables of ``directory`` by hospital code (reloaded when a file changes)."""
    return _load(file_stamps(directory, ".yaml"))


@lru_cache(maxsize=8)
def _load(stamp: tuple[tuple[str, int, int], ...]) -> dict[str, KhanzaMapping]:
    out = {}
    for name, _m, _s in stamp:
        raw = yaml.safe_load(Path(name).read_text())
        table = KhanzaMapping(
            code=str(raw["code"]).upper(),
            organization=str(raw["organization"]),
            location=str(raw.get("location", "")),
            satusehat_organization_id=str(raw["satusehat_organization_id"]),
            mrn_system=str(raw["mrn_system"]),
            clock=str(raw.get("clock", "+08:00")),
            payers={str(k): str(v) for k, v in (raw.get("payers") or {}).items()},
            emergency_clinics=frozenset(str(x) for x in raw.get("emergency_clinics") or ()),
        )
        out[table.code] = table
    return out


def mapping_for(context: Context, sender: str | None) -> KhanzaMapping:
    """The table of ``sender``, or the only table when no sender is named."""
    tables = load_mappings(context.mappings_dir / "rsud" / "khanza")
    if sender:
        table = tables.get(sender.upper())
        if table is None:
            raise FhirError.single(422, "not-found", f"No Khanza mapping table for '{sender}'")
        return table
    if len(tables) != 1:
        raise FhirError.single(
            422,
            "business-rule",
            f"{len(tables)} Khanza mapping tables in mappings/rsud/khanza; the message must "
            "name its hospital (sender)",
        )
    return next(iter(tables.values()))


class KhanzaAdapter:
    name = NAME
    visit_priority = 1  # below the HL7 feed's (adapter.py): the two are merged, HL7 preferred

    def claims(self, bundle: dict[str, Any], context: Context) -> bool:
        return False  # Khanza sends rows, never FHIR

    def map(self, message: Message, context: Context) -> Mapped:
        visit = _parse(message.payload)
        table = mapping_for(context, message.sender)
        bundle = visit_bundle(visit, table, context)
        return Mapped(bundle=bundle, sender=table.code, organization=table.organization)


adapter = KhanzaAdapter()


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        visit = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise FhirError.single(400, "structure", "The payload is not JSON") from None
    if not isinstance(visit, dict):
        raise FhirError.single(400, "structure", "A Khanza visit is a JSON object")
    for key in ("reg_periksa", "pasien"):
        if not isinstance(visit.get(key), dict):
            raise FhirError.single(400, "required", f"The visit has no '{key}' row", key)
    reg = visit["reg_periksa"]
    if not _text(reg.get("no_rawat")):
        raise FhirError.single(400, "required", "The visit has no no_rawat", "reg_periksa.no_rawat")
    if not _text(visit["pasien"].get("no_rkm_medis")):
        raise FhirError.single(
            400, "required", "The patient has no no_rkm_medis", "pasien.no_rkm_medis"
        )
    return visit


def _text(value: Any) -> str | None:
    """A column's value as text, or None when Khanza holds nothing there."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in _EMPTY else text


def _rows(visit: dict[str, Any], table: str) -> list[dict[str, Any]]:
    rows = visit.get(table)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _ranked(rows: list[dict[str, Any]], code_key: str) -> list[dict[str, Any]]:
    """Diagnoses or procedures in Khanza's order: ``prioritas``, then code and status."""

    def key(r: dict[str, Any]) -> tuple[int, str, str]:
        try:
            rank = int(r.get("prioritas") or 0)
        except (TypeError, ValueError):
            rank = 0
        return (rank, str(r.get(code_key) or ""), str(r.get("status") or ""))

    return sorted(rows, key=key)


def visit_bundle(visit: dict[str, Any], table: KhanzaMapping, context: Context) -> dict[str, Any]:
    """The transaction Bundle of one Khanza visit; FhirError 422 (every problem, with its
    path in the visit) when it cannot be one."""
    reg: dict[str, Any] = visit["reg_periksa"]
    pasien: dict[str, Any] = visit["pasien"]
    no_rawat = str(reg["no_rawat"]).strip()
    system = table.encounter_system
    issues: list[Issue] = []

    mrn = str(pasien["no_rkm_medis"]).strip()
    patient_url = f"urn:uuid:{uuid.uuid5(_URN, f'{table.mrn_system}|{mrn}')}"
    subject = {"reference": patient_url}
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": patient_url,
            "resource": _patient(visit, table, context),
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={table.mrn_system}|{mrn}",
            },
        }
    ]

    start = _start(reg, table.clock)
    if start is None:
        issues.append(
            Issue(
                "required",
                "The visit has no registration date and time",
                ("reg_periksa.tgl_registrasi",),
            )
        )

    diagnoses = _ranked(_rows(visit, "diagnosa_pasien"), "kd_penyakit")
    names = {str(r.get("kd_penyakit")): r for r in _rows(visit, "penyakit")}
    conditions: list[dict[str, Any]] = []
    for n, row in enumerate(diagnoses):
        raw = str(row.get("kd_penyakit") or "").strip()
        code = c.icd10(raw, context.concept_maps.icd10_terminal)
        if code is None:
            issues.append(
                Issue(
                    "code-invalid",
                    f"Diagnosis code '{raw}' is not ICD-10",
                    (f"diagnosa_pasien[{n}].kd_penyakit",),
                )
            )
            continue
        coding: dict[str, Any] = {"system": c.ICD10, "code": code}
        display = _text((names.get(raw) or {}).get("nm_penyakit"))
        if display and display != raw:
            coding["display"] = display
        res_id = child_id(system, no_rawat, "Condition", n)
        condition: dict[str, Any] = {
            "resourceType": "Condition",
            "id": res_id,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "encounter-diagnosis",
                        }
                    ]
                }
            ],
            "code": {"coding": [coding]},
            "subject": subject,
            "encounter": {"reference": f"urn:uuid:{encounter_id(system, no_rawat)}"},
        }
        if start:
            condition["recordedDate"] = start
        conditions.append(condition)

    procedures_rows = _ranked(_rows(visit, "prosedur_pasien"), "kode")
    icd9 = {str(r.get("kode")): r for r in _rows(visit, "icd9")}
    procedures: list[dict[str, Any]] = []
    for n, row in enumerate(procedures_rows):
        code = _text(row.get("kode"))
        if code is None:
            issues.append(
                Issue("required", "A procedure without a code", (f"prosedur_pasien[{n}].kode",))
            )
            continue
        coding = {"system": ICD9CM, "code": code}
        display = _text((icd9.get(code) or {}).get("deskripsi_panjang"))
        if display:
            coding["display"] = display
        procedures.append(
            {
                "resourceType": "Procedure",
                "id": child_id(system, no_rawat, "Procedure", n),
                "status": "completed",
                "code": {"coding": [coding]},
                "subject": subject,
                "encounter": {"reference": f"urn:uuid:{encounter_id(system, no_rawat)}"},
            }
        )
    if issues:
        raise FhirError(422, issues)

    assert start is not None
    encounter = _encounter(visit, table, no_rawat, start, subject, conditions)
    entries.append(put_entry(encounter))
    entries.extend(put_entry(r) for r in conditions)
    entries.extend(put_entry(r) for r in procedures)
    coverage = _coverage(visit, table, subject)
    if coverage is not None:
        entries.append(coverage)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _start(reg: dict[str, Any], clock: str) -> str | None:
    day, time = _text(reg.get("tgl_registrasi")), _text(reg.get("jam_reg"))
    if not day or not _DATE.match(day) or not _valid(day, "%Y-%m-%d"):
        return None
    if time and _TIME.match(time) and _valid(time, "%H:%M:%S"):
        return f"{day}T{time}{clock}"
    return day


def _valid(value: str, form: str) -> bool:
    try:
        datetime.strptime(value, form)
    except ValueError:
        return False
    return True


def _patient(visit: dict[str, Any], table: KhanzaMapping, context: Context) -> dict[str, Any]:
    p: dict[str, Any] = visit["pasien"]
    identifiers: list[dict[str, Any]] = [
        {"use": "usual", "system": table.mrn_system, "value": str(p["no_rkm_medis"]).strip()}
    ]
    nik = _text(p.get("no_ktp"))
    if nik:
        identifiers.append({"use": "official", "system": c.NIK, "value": nik})
    card = _text(p.get("no_peserta"))
    if card:
        identifiers.append({"system": c.BPJS_CARD, "value": card})
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": identifiers}
    name = _text(p.get("nm_pasien"))
    if name:
        patient["name"] = [{"use": "official", "text": name}]
    gender = _text(p.get("jk"))
    if gender:
        patient["gender"] = gender  # L / P: the canonical pass makes it male / female
    birth = _text(p.get("tgl_lahir"))
    if birth and _DATE.match(birth) and birth != "0000-00-00":
        patient["birthDate"] = birth
    phone = _text(p.get("no_tlp"))
    if phone:
        patient["telecom"] = [{"system": "phone", "value": phone, "use": "mobile"}]
    address = _address(visit, context)
    if address:
        patient["address"] = [address]
    marital = _MARITAL.get(str(p.get("stts_nikah") or "").upper())
    if marital:
        patient["maritalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": marital,
                }
            ]
        }
    mother = _text(p.get("nm_ibu"))
    if mother:
        patient["contact"] = [
            {
                "relationship": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                "code": "MTH",
                                "display": "mother",
                            }
                        ]
                    }
                ],
                "name": {"text": mother},
            }
        ]
    return patient


def _name_of(visit: dict[str, Any], table: str, column: str) -> str | None:
    row = visit.get(table)
    return _text(row.get(column)) if isinstance(row, dict) else None


def _address(visit: dict[str, Any], context: Context) -> dict[str, Any] | None:
    """The patient's address; the kelurahan code from the name in Khanza's region table."""
    address: dict[str, Any] = {"use": "home"}
    line = _text(visit["pasien"].get("alamat"))
    if line:
        address["line"] = [line]
    kelurahan = _name_of(visit, "kelurahan", "nm_kel")
    for key, table, column in (
        ("district", "kecamatan", "nm_kec"),
        ("city", "kabupaten", "nm_kab"),
        ("state", "propinsi", "nm_prop"),
    ):
        value = _name_of(visit, table, column)
        if value:
            address[key] = value
    if kelurahan:
        village = context.regions.by_name(kelurahan)
        if village is not None:
            address["extension"] = [administrative_code(village)]
        else:  # kept as text: the name, not a code that may be wrong
            address["text"] = ", ".join([*(address.get("line") or []), f"Kel. {kelurahan}"])
    return address if len(address) > 1 else None


def _encounter(
    visit: dict[str, Any],
    table: KhanzaMapping,
    no_rawat: str,
    start: str,
    subject: dict[str, Any],
    conditions: list[dict[str, Any]],
) -> dict[str, Any]:
    reg: dict[str, Any] = visit["reg_periksa"]
    stts = str(reg.get("stts") or "")
    clinic = _text(reg.get("kd_poli"))
    if reg.get("status_lanjut") == "Ranap":
        klass = "IMP"
    elif clinic in table.emergency_clinics:
        klass = "EMER"
    else:
        klass = "AMB"
    system = table.encounter_system
    res_id = encounter_id(system, no_rawat)
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": res_id,
        "identifier": [{"system": system, "value": no_rawat}],
        "status": _STATUS.get(stts, "unknown"),
        "class": _CLASSES[klass],
        "subject": subject,
        "period": {"start": start},
        "serviceProvider": {"reference": table.organization},
    }
    clinic_name = _name_of(visit, "poliklinik", "nm_poli") or clinic
    if clinic_name:
        encounter["serviceType"] = {"text": clinic_name}
    if table.location:
        where: dict[str, Any] = {"reference": table.location}
        if clinic_name:
            where["display"] = clinic_name
        encounter["location"] = [{"location": where}]
    if conditions:
        encounter["diagnosis"] = [
            {"condition": {"reference": f"urn:uuid:{cond['id']}"}, "rank": rank}
            for rank, cond in enumerate(conditions, start=1)
        ]
    if stts in _DISPOSITION:
        code, display = _DISPOSITION[stts]
        encounter["hospitalization"] = {
            "dischargeDisposition": {
                "coding": [{"system": _DISPOSITION_SYSTEM, "code": code, "display": display}]
            }
        }
    return encounter


def _coverage(
    visit: dict[str, Any], table: KhanzaMapping, subject: dict[str, Any]
) -> dict[str, Any] | None:
    """The Coverage on the BPJS card (its transaction entry) when the visit's payer is BPJS and
    the patient has a card."""
    reg, pasien = visit["reg_periksa"], visit["pasien"]
    payer = _text(reg.get("kd_pj")) or _text(pasien.get("kd_pj"))
    if payer is None or table.payers.get(payer) != "bpjs":
        return None
    raw = _text(pasien.get("no_peserta"))
    card = (c.bpjs_card(raw) or raw) if raw else None
    if not card:
        return None
    payor = _name_of(visit, "penjab", "png_jawab") or "BPJS Kesehatan"
    return bpjs_coverage_entry(card, subject, payor)
