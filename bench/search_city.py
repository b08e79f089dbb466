"""A generated city for the search benchmark: patients and their Puskesmas visits.

Each patient gets ``visits`` visits (Encounter at one of 17 Puskesmas, 7 Observations, a
Condition, an Immunization: 10 resources each) spread over 2023-2025. With 64,000 patients and 2
visits that is 1,344,000 resources. Resources come from ``bench/common.py``'s realistic builders,
with deterministic ids so that queries can name them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import common

PUSKESMAS = [f"pkm{i:02}" for i in range(1, 18)]
RSUD = "rsud"


def organizations() -> list[dict[str, Any]]:
    return [
        {"resourceType": "Organization", "id": o, "active": True, "name": f"Puskesmas {o}"}
        for o in [*PUSKESMAS, RSUD]
    ]


def nik(i: int) -> str:
    return f"7472{i:012d}"


def when(rng: random.Random) -> str:
    return (
        f"{rng.randint(2023, 2025)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}"
        f"T{rng.randint(7, 15):02}:{rng.randint(0, 59):02}:00+08:00"
    )


def person(i: int, visits: int = 2) -> list[dict[str, Any]]:
    """Patient ``p{i}`` and the resources of their visits."""
    rng = random.Random(i)
    pid = f"p{i}"
    pat = common.patient(rng, nik(i))
    pat["id"] = pid
    given, family = rng.choice(common.GIVEN), rng.choice(common.FAMILY)
    pat["name"] = [
        {"use": "official", "text": f"{given} {family}", "family": family, "given": [given]}
    ]
    home = PUSKESMAS[i % len(PUSKESMAS)]
    pat["managingOrganization"] = {"reference": f"Organization/{home}"}
    out = [pat]
    subject = f"Patient/{pid}"
    for v in range(visits):
        t = when(rng)
        eid = f"e{i}-{v}"
        enc = common.encounter(rng, subject, t)
        enc["id"] = eid
        enc["serviceProvider"] = {"reference": f"Organization/{home}"}
        out.append(enc)
        eref = f"Encounter/{eid}"
        for k, o in enumerate(common.observations(rng, subject, eref, t)):
            o["id"] = f"o{i}-{v}-{k}"
            out.append(o)
        c = common.condition(rng, subject, eref, t)
        c["id"] = f"c{i}-{v}"
        out.append(c)
        im = common.immunization(rng, subject, eref, t)
        im["id"] = f"i{i}-{v}"
        out.append(im)
    return out


def city(patients: int, visits: int = 2, start: int = 0) -> Iterator[dict[str, Any]]:
    yield from organizations() if start == 0 else ()
    for i in range(start, start + patients):
        yield from person(i, visits)
