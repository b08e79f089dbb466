"""SATUSEHAT as a source (national-apis.md A): NDJSON of the resources the national platform
holds, keyed by IHS number: Organizations, Patients and each facility's synced encounters."""

from __future__ import annotations

import zlib
from collections import defaultdict
from pathlib import Path

import orjson

from . import fhir
from .generate import SynthCity


def task_satusehat_patients(sc: SynthCity, out: Path) -> int:
    from .writer import _write

    lines = []
    for f in sc.city.facilities:
        lines.append(
            orjson.dumps(
                {
                    "resourceType": "Organization",
                    "id": f.org_id,
                    "identifier": [
                        {
                            "use": "official",
                            "system": "http://sys-ids.kemkes.go.id/organization/1000000",
                            "value": f.code,
                        }
                    ],
                    "active": True,
                    "name": f.name,
                }
            )
        )
    size = _write(out / "satusehat" / "Organization.ndjson", b"".join(x + b"\n" for x in lines))
    lines = []
    for p in sc.persons:
        rec = sc.ss_records.get(p.pid)
        if rec is None:
            continue
        died = p.death if any(e.died for e in p.events) else None
        lines.append(orjson.dumps(fhir.satusehat_patient(rec, p, sc.city, died)))
    return size + _write(out / "satusehat" / "Patient.ndjson", b"".join(x + b"\n" for x in lines))


def task_satusehat(sc: SynthCity, out: Path, code: str) -> int:
    """The synced encounters of one facility, as SATUSEHAT holds them."""
    from .writer import _write

    fac = sc.city.facility(code)
    files: dict[str, list[bytes]] = defaultdict(list)
    prefix = f"{zlib.crc32(f'{sc.seed}/satusehat/{code}'.encode()):08x}"
    n = 0

    def new_id() -> str:
        nonlocal n
        n += 1
        return (
            f"{prefix}-{n >> 32 & 0xFFFF:04x}-4{n >> 20 & 0xFFF:03x}-a{n >> 8 & 0xFFF:03x}-{n:012x}"
        )

    org = {"reference": f"Organization/{fac.org_id}", "display": fac.name}
    meta = {"source": f"Organization/{fac.org_id}"}
    pract = fhir.practitioner_ids(fac)[0]
    for pid in sc.visitors.get(code, ()):
        p = sc.persons[pid]
        rec = sc.ss_records.get(pid)
        if rec is None:
            continue
        subject = f"Patient/{rec.value}"
        for idx, e in enumerate(p.events):
            if e.facility != code or (p.pid, idx) not in sc.synced:
                continue
            res = fhir.encounter_resources(
                e, fac, sc.encounter_value(p, idx, e, fac), subject, new_id, fhir.utc, pract, False
            )
            enc_id = res[0][0]
            for rid, r in res:
                r["id"] = rid
                r["meta"] = meta
                rtype = r["resourceType"]
                if rtype == "Encounter":
                    r["serviceProvider"] = org
                    for d in r.get("diagnosis", ()):
                        d["condition"] = {"reference": f"Condition/{d['condition']['reference']}"}
                else:
                    r["encounter"] = {"reference": f"Encounter/{enc_id}"}
                files[rtype].append(orjson.dumps(r))
    size = 0
    for rtype in sorted(files):
        size += _write(
            out / "satusehat" / code / f"{rtype}.ndjson", b"".join(x + b"\n" for x in files[rtype])
        )
    return size
