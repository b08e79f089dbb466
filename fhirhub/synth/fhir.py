"""FHIR R4 resources of the synthetic city, as plain dicts: the reference data (Dinkes, the
Puskesmas and the RSUD) and the Puskesmas transaction Bundles, SATUSEHAT-shaped
(national-apis.md A.4–A.10). No model validation here: tests parse everything with
fhir.resources instead, which keeps generation fast."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from .city import ADMIN_CODE, IHS, LOCAL_DX, LOCAL_OBS, NIK, NIK_IBU, City, Facility
from .errors import Record
from .model import Encounter, Person

ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CVX = "http://hl7.org/fhir/sid/cvx"
SNOMED = "http://snomed.info/sct"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CLASS_DISPLAY = {
    "AMB": "ambulatory",
    "IMP": "inpatient encounter",
    "EMER": "emergency",
    "HH": "home health",
}
LOINC_DISPLAY = {
    "85354-9": "Blood pressure panel with all children optional",
    "8480-6": "Systolic blood pressure",
    "8462-4": "Diastolic blood pressure",
    "29463-7": "Body weight",
    "8302-2": "Body height",
    "8306-3": "Body height --lying",
    "2339-0": "Glucose [Mass/volume] in Blood",
    "8310-5": "Body temperature",
    "88517-1": "Mycobacterium tuberculosis complex DNA [Presence] by NAA",
    "11545-1": "Microscopic observation [Identifier] in Sputum by Acid fast stain",
    "38379-4": "Mycobacterium tuberculosis complex [Presence] by Organism specific culture",
    "75622-1": "HIV 1 and 2 tests - Meaningful Use set",
}
LAB = {"88517-1", "11545-1", "38379-4", "75622-1", "2339-0"}
LOCAL_OBS_CODES = {
    "85354-9": "TD",
    "29463-7": "BB",
    "8302-2": "TB",
    "8306-3": "PB",
    "2339-0": "GDS",
    "8310-5": "SUHU",
}
LOCAL_DX_NAMES = {
    "J06.9": "ISPA",
    "A09": "DIARE",
    "I10": "HT",
    "E11.9": "DM2",
    "Z34.0": "ANC-K1",
    "Z34.8": "ANC",
    "Z35.9": "ANC-RISTI",
    "Z00.1": "TIMBANG",
    "K29.7": "GASTRITIS",
    "A90": "DBD-DD",
    "A91": "DBD",
    "Z03.0": "SUSPEK-TB",
    "A15.0": "TB-PARU",
}
VACCINE = {
    "08": "Hepatitis B",
    "19": "BCG",
    "02": "OPV",
    "198": "DTP-HepB-Hib",
    "10": "IPV",
    "04": "Measles-Rubella",
}
WITA = timedelta(hours=8)


def local_dx(code: str) -> str:
    return LOCAL_DX_NAMES.get(code, "L-" + code.replace(".", ""))


def utc(dt: datetime) -> str:
    return (dt - WITA).isoformat(timespec="seconds") + "+00:00"


def wita(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds") + "+08:00"


def org_id(fac: Facility) -> str:
    return f"org-{fac.code.lower()}"


def loc_id(fac: Facility) -> str:
    return f"loc-{fac.code.lower()}"


def practitioner_ids(fac: Facility) -> list[str]:
    n = 8 if fac.kind == "rsud" else 3
    return [f"prac-{fac.code.lower()}-{i}" for i in range(1, n + 1)]


def admin_code(city: City, kelurahan: str, rt: str | None = None, rw: str | None = None) -> dict:
    ext = [
        {"url": "province", "valueCode": city.province[0]},
        {"url": "city", "valueCode": city.city[0]},
        {"url": "district", "valueCode": kelurahan[:6]},
        {"url": "village", "valueCode": kelurahan},
    ]
    if rt:
        ext += [{"url": "rt", "valueCode": rt}, {"url": "rw", "valueCode": rw or "0"}]
    return {"url": ADMIN_CODE, "extension": ext}


def _address(city: City, kelurahan: str, line: str, rt=None, rw=None, coded=True) -> dict:
    a: dict = {
        "use": "work" if rt is None else "home",
        "line": [line],
        "city": "Kota Baubau",
        "district": city.kecamatan_name(kelurahan[:6]),
        "state": "Sulawesi Tenggara",
        "country": "ID",
    }
    if coded:
        a["extension"] = [admin_code(city, kelurahan, rt, rw)]
    else:
        a["text"] = f"{line}, Kel. {city.kelurahan_name(kelurahan)}, Kota Baubau"
    return a


def reference_resources(city: City) -> list[dict]:
    """Dinkes, the Puskesmas and the RSUD: Organizations, Locations, Practitioners, and the
    ConceptMaps of the local codes some Puskesmas send."""
    out: list[dict] = []
    dinkes = {
        "resourceType": "Organization",
        "id": "org-dinkes",
        "identifier": [{"system": "http://sys-ids.kemkes.go.id/organization", "value": "7472"}],
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "govt",
                        "display": "Government",
                    }
                ]
            }
        ],
        "name": "Dinas Kesehatan Kota Baubau",
        "address": [_address(city, "7472021001", "Jl. Dayanu Ikhsanuddin")],
    }
    out.append(dinkes)
    for fac in city.facilities:
        org = {
            "resourceType": "Organization",
            "id": org_id(fac),
            "identifier": [
                {"system": "http://sys-ids.kemkes.go.id/organization", "value": fac.org_id},
                {"system": "https://fhir.bpjs-kesehatan.go.id/id/kode-ppk", "value": fac.ppk},
                {"system": "https://fhirhub.baubaukota.go.id/sid/facility", "value": fac.code},
            ],
            "active": True,
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                            "code": "prov",
                            "display": "Healthcare Provider",
                        }
                    ]
                }
            ],
            "name": fac.name,
            "address": [_address(city, fac.address_kelurahan, f"Jl. {fac.name.split()[-1]}")],
            "partOf": {"reference": "Organization/org-dinkes"},
        }
        out.append(org)
        loc = {
            "resourceType": "Location",
            "id": loc_id(fac),
            "identifier": [
                {"system": f"http://sys-ids.kemkes.go.id/location/{fac.org_id}", "value": fac.code}
            ],
            "status": "active",
            "name": fac.name,
            "mode": "instance",
            "physicalType": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                        "code": "bu",
                        "display": "Building",
                    }
                ]
            },
            "address": _address(city, fac.address_kelurahan, f"Jl. {fac.name.split()[-1]}"),
            "managingOrganization": {"reference": f"Organization/{org_id(fac)}"},
        }
        if fac.kelurahan:
            loc["extension"] = [
                {
                    "url": "https://fhirhub.baubaukota.go.id/StructureDefinition/working-area",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": "https://fhirhub.baubaukota.go.id/CodeSystem/kelurahan",
                                "code": k,
                            }
                            for k in fac.kelurahan
                        ]
                    },
                }
            ]
        out.append(loc)
        for i, pid in enumerate(practitioner_ids(fac), start=1):
            out.append(
                {
                    "resourceType": "Practitioner",
                    "id": pid,
                    "identifier": [
                        {
                            "system": "https://fhir.kemkes.go.id/id/nakes-his-number",
                            "value": f"1{fac.org_id[-5:]}{i:05d}",
                        }
                    ],
                    "active": True,
                    "name": [{"use": "official", "text": f"Tenaga Kesehatan {fac.code}-{i}"}],
                }
            )
    out.append(
        _concept_map(
            "cm-diagnosa-lokal",
            LOCAL_DX,
            ICD10,
            [(local_dx(c), c) for c in sorted(set(LOCAL_DX_NAMES) | _ALL_DX)],
        )
    )
    out.append(
        _concept_map(
            "cm-pemeriksaan-lokal",
            LOCAL_OBS,
            LOINC,
            sorted((v, k) for k, v in LOCAL_OBS_CODES.items()),
        )
    )
    return out


# every ICD-10 code the generator emits (filled in by the generator module at import)
_ALL_DX: set[str] = set()


def _concept_map(cid: str, source: str, target: str, pairs: list[tuple[str, str]]) -> dict:
    return {
        "resourceType": "ConceptMap",
        "id": cid,
        "url": f"https://fhirhub.baubaukota.go.id/ConceptMap/{cid}",
        "status": "active",
        "name": cid.replace("-", "_"),
        "group": [
            {
                "source": source,
                "target": target,
                "element": [
                    {"code": s, "target": [{"code": t, "equivalence": "equivalent"}]}
                    for s, t in pairs
                ],
            }
        ],
    }


def put_bundle(resources: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"{r['resourceType']}/{r['id']}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


def patient_resource(
    city: City, rec: Record, p: Person, deceased: date | None, today: date
) -> dict:
    ident = [{"use": "usual", "system": rec.system, "value": rec.value}]
    if rec.nik:
        ident.append({"use": "official", "system": NIK, "value": rec.nik})
    if rec.nik_ibu:
        ident.append({"use": "official", "system": NIK_IBU, "value": rec.nik_ibu})
    res: dict = {
        "resourceType": "Patient",
        "meta": {"profile": ["https://fhir.kemkes.go.id/r4/StructureDefinition/Patient"]},
        "identifier": ident,
        "active": True,
        "name": [{"use": "official", "text": rec.name}],
        "gender": rec.sex,
        "birthDate": rec.birth.isoformat(),
        "address": [_address(city, p.kelurahan, p.street, p.rt, p.rw, rec.address_code)],
        "maritalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": p.marital,
                }
            ]
        },
    }
    if rec.phone:
        res["telecom"] = [{"system": "phone", "value": rec.phone, "use": "mobile"}]
    if deceased is not None:
        res["deceasedDateTime"] = deceased.isoformat()
    if rec.newborn or p.birth >= date(today.year - 2, 1, 1):
        res["multipleBirthInteger"] = p.multiple_birth
    return res


# Constant parts of the clinical resources, shared between resources (never mutated).
_CLINICAL_ACTIVE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
    ]
}
_CAT_ENC_DX = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                "code": "encounter-diagnosis",
            }
        ]
    }
]
_DX_USE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/diagnosis-role",
            "code": "DD",
            "display": "Discharge diagnosis",
        }
    ]
}
_ATND = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "ATND",
                "display": "attender",
            }
        ]
    }
]
_CAT = {
    k: [
        {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": k}
            ]
        }
    ]
    for k in ("laboratory", "vital-signs")
}
_EXPIRED = {
    "dischargeDisposition": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                "code": "exp",
                "display": "Expired",
            }
        ]
    }
}
_AP = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0443",
            "code": "AP",
            "display": "Administering Provider",
        }
    ]
}
_CLASS = {k: {"system": ACT_CODE, "code": k, "display": v} for k, v in CLASS_DISPLAY.items()}
_POS = {"coding": [{"system": SNOMED, "code": "10828004", "display": "Positive"}]}
_NEG = {"coding": [{"system": SNOMED, "code": "260385009", "display": "Negative"}]}
_BP_CODES = {
    c: {"coding": [{"system": LOINC, "code": c, "display": LOINC_DISPLAY[c]}]}
    for c in ("8480-6", "8462-4")
}
_REASON_KINDS = frozenset(("anc", "kn", "school", "growth", "screening"))


def encounter_resources(
    e: Encounter,
    fac: Facility,
    enc_value: str,
    subject: str,
    full_url,
    ts,
    practitioner: str,
    local_codes: bool,
) -> list[tuple[str, dict]]:
    """The Encounter with its Conditions, Observations and Immunizations: (fullUrl, resource)
    pairs. `full_url()` gives a fresh id, `ts` renders a datetime."""
    enc_url = full_url()
    subj = {"reference": subject}
    enc_ref = {"reference": enc_url}
    out: list[tuple[str, dict]] = [("", {})]
    diagnoses = []
    start, end = ts(e.start), ts(e.end)
    dx_system = LOCAL_DX if local_codes else ICD10
    for rank, code in enumerate(e.dx, start=1):
        c_url = full_url()
        coding = {"system": dx_system, "code": local_dx(code) if local_codes else code}
        out.append(
            (
                c_url,
                {
                    "resourceType": "Condition",
                    "clinicalStatus": _CLINICAL_ACTIVE,
                    "category": _CAT_ENC_DX,
                    "code": {"coding": [coding]},
                    "subject": subj,
                    "encounter": enc_ref,
                    "recordedDate": start,
                },
            )
        )
        diagnoses.append({"condition": {"reference": c_url}, "use": _DX_USE, "rank": rank})
    loc = {"reference": f"Location/{loc_id(fac)}", "display": fac.name}
    perf_ref = {"reference": f"Practitioner/{practitioner}"}
    enc: dict = {
        "resourceType": "Encounter",
        "identifier": [
            {"system": f"http://sys-ids.kemkes.go.id/encounter/{fac.org_id}", "value": enc_value}
        ],
        "status": "finished",
        "class": _CLASS[e.klass],
        "subject": subj,
        "participant": [{"type": _ATND, "individual": perf_ref}],
        "period": {"start": start, "end": end},
        "statusHistory": [
            {"status": "arrived", "period": {"start": start, "end": start}},
            {"status": "finished", "period": {"start": start, "end": end}},
        ],
        "location": [{"location": loc}],
        "serviceProvider": {"reference": f"Organization/{org_id(fac)}", "display": fac.name},
    }
    if e.kind in _REASON_KINDS:
        enc["reasonCode"] = [
            {
                "coding": [
                    {"system": dx_system, "code": local_dx(e.dx[0]) if local_codes else e.dx[0]}
                ]
            }
        ]
    if diagnoses:
        enc["diagnosis"] = diagnoses
    if e.died:
        enc["hospitalization"] = _EXPIRED
    out[0] = (enc_url, enc)
    perf = [perf_ref]
    i = 0
    obs = e.obs
    while i < len(obs):
        code, value, unit = obs[i]
        i += 1
        o: dict = {
            "resourceType": "Observation",
            "status": "final",
            "category": _CAT["laboratory" if code in LAB else "vital-signs"],
            "code": {"coding": [_obs_coding(code, local_codes)]},
            "subject": subj,
            "encounter": enc_ref,
            "effectiveDateTime": start,
            "issued": end,
            "performer": perf,
        }
        if code == "85354-9":
            dia = obs[i][1]
            i += 1
            o["component"] = [
                {"code": _BP_CODES["8480-6"], "valueQuantity": _qty(value, unit)},
                {"code": _BP_CODES["8462-4"], "valueQuantity": _qty(dia, unit)},
            ]
        elif unit == "":
            o["valueCodeableConcept"] = _POS if value >= 0.5 else _NEG
        else:
            o["valueQuantity"] = _qty(value, unit)
        out.append((full_url(), o))
    if e.imm:
        occurred = e.start.date()
        loc_ref = {"reference": f"Location/{loc_id(fac)}"}
        expiry = date(occurred.year + 2, 1, 31).isoformat()
        yymm = f"{occurred.year % 100:02d}{occurred.month:02d}"
        for cvx, dose in e.imm:
            lot = VACCINE[cvx][:3].upper() + yymm
            out.append(
                (
                    full_url(),
                    {
                        "resourceType": "Immunization",
                        "status": "completed",
                        "vaccineCode": {
                            "coding": [{"system": CVX, "code": cvx, "display": VACCINE[cvx]}]
                        },
                        "patient": subj,
                        "encounter": enc_ref,
                        "occurrenceDateTime": start,
                        "primarySource": True,
                        "location": loc_ref,
                        "lotNumber": lot + str(dose),
                        "expirationDate": expiry,
                        "performer": [{"function": _AP, "actor": perf_ref}],
                        "protocolApplied": [{"doseNumberPositiveInt": dose}],
                    },
                )
            )
    return out


def _obs_coding(code: str, local: bool) -> dict:
    if local and code in LOCAL_OBS_CODES:
        return {"system": LOCAL_OBS, "code": LOCAL_OBS_CODES[code]}
    return {"system": LOINC, "code": code, "display": LOINC_DISPLAY.get(code, code)}


def _qty(value: float, unit: str) -> dict:
    v: float | int = int(value) if unit in ("mm[Hg]", "mg/dL") else value
    return {"value": v, "unit": unit, "system": UCUM, "code": unit}


def satusehat_patient(rec: Record, p: Person, city: City, deceased: date | None) -> dict:
    """A Patient as the national platform holds it: id = IHS number, NIK identifier."""
    ident = [{"use": "official", "system": IHS, "value": rec.value}]
    if rec.nik:
        ident.append({"use": "official", "system": NIK, "value": rec.nik})
    if rec.nik_ibu:
        ident.append({"use": "official", "system": NIK_IBU, "value": rec.nik_ibu})
    res = {
        "resourceType": "Patient",
        "id": rec.value,
        "meta": {"profile": ["https://fhir.kemkes.go.id/r4/StructureDefinition/Patient"]},
        "identifier": ident,
        "active": True,
        "name": [{"use": "official", "text": rec.name}],
        "gender": rec.sex,
        "birthDate": rec.birth.isoformat(),
        "address": [_address(city, p.kelurahan, p.street, p.rt, p.rw)],
        "multipleBirthInteger": p.multiple_birth,
    }
    if deceased is not None:
        res["deceasedDateTime"] = deceased.isoformat()
    return res
