"""A synthetic city as a perfect server would hold it, for checking the indicators against the
generator's ground truth: every record of every facility (Puskesmas and RSUD) as a Patient with
its encounters, in ICD-10/LOINC (local codes already mapped), and the patient index as Person
resources linking each person's records, with the person's true demographics.

The generator's truth counts every person it made, also those no source ever recorded (no
encounter in the window); a Person with no link stands for each of them (the population
register), so that the P-kind initial populations can match too (``register=False`` leaves them
out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from fhirhub.synth import fhir
from fhirhub.synth.generate import SynthCity, reference_bundle

PATIENTS_PER_BUNDLE = 60


def patient_id(key: tuple[int, str, bool]) -> str:
    pid, facility, newborn = key
    return f"rec-{pid}-{facility.lower()}-{'n' if newborn else 'm'}"


def _urls() -> Any:
    n = 0

    def fresh() -> str:
        nonlocal n
        n += 1
        return f"urn:uuid:00000000-0000-4000-8000-{n:012x}"

    return fresh


def clinical_bundles(sc: SynthCity, part: int = 0, parts: int = 1) -> Iterator[dict[str, Any]]:
    """The records and their encounters; ``part`` of ``parts`` gives only the persons whose
    number is ``part`` modulo ``parts`` (a loader's worker process)."""
    city = sc.city
    entries: list[dict[str, Any]] = []
    patients = 0
    urls = _urls()
    for key in sorted(sc.records, key=lambda k: (k[0], k[1], k[2])):
        pid, code, _newborn = key
        if pid % parts != part:
            continue
        p = sc.persons[pid]
        fac = city.facility(code)
        rec = sc.records[key]
        pat = fhir.patient_resource(city, rec, p, sc.deceased_at(p, code), sc.today)
        pat["id"] = patient_id(key)
        ref = f"Patient/{pat['id']}"
        entries.append({"fullUrl": ref, "resource": pat, "request": {"method": "PUT", "url": ref}})
        practs = fhir.practitioner_ids(fac)
        for idx, e in enumerate(p.events):
            if e.facility != code or sc.record_key(p, e) != key:
                continue
            for url, res in fhir.encounter_resources(
                e,
                fac,
                sc.encounter_value(p, idx, e, fac),
                ref,
                urls,
                fhir.wita if pid % 2 else fhir.utc,
                practs[(pid + idx) % len(practs)],
                False,
            ):
                entries.append(
                    {
                        "fullUrl": url,
                        "resource": res,
                        "request": {"method": "POST", "url": res["resourceType"]},
                    }
                )
        patients += 1
        if patients >= PATIENTS_PER_BUNDLE:
            yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            entries, patients = [], 0
    if entries:
        yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def person_resources(sc: SynthCity, *, register: bool = True) -> list[dict[str, Any]]:
    records: dict[int, list[str]] = defaultdict(list)
    for key in sc.records:
        records[key[0]].append(patient_id(key))
    out = []
    for p in sc.persons:
        links = sorted(records.get(p.pid, []))
        if not links and not register:
            continue
        person: dict[str, Any] = {
            "resourceType": "Person",
            "id": f"person-{p.pid}",
            "gender": p.sex,
            "birthDate": p.birth.isoformat(),
            "address": [
                {
                    "use": "home",
                    "extension": [fhir.admin_code(sc.city, p.kelurahan)],
                    "city": "Kota Baubau",
                }
            ],
            "active": True,
        }
        if links:
            person["link"] = [{"target": {"reference": f"Patient/{x}"}} for x in links]
        out.append(person)
    return out


def bundles(sc: SynthCity, *, register: bool = True) -> Iterator[dict[str, Any]]:
    """Reference data, the records and their encounters, then the patient index."""
    yield reference_bundle(sc)
    yield from clinical_bundles(sc)
    persons = person_resources(sc, register=register)
    for start in range(0, len(persons), 200):
        yield fhir.put_bundle(persons[start : start + 200])
