"""The non-Puskesmas sources, each in its own format (national-apis.md B, C, A), as writer
tasks: RSUD → HL7 v2 messages and rows of SIMRS Khanza tables (`rsud`); BPJS → VClaim and
P-Care payloads (`bpjs`); SATUSEHAT → NDJSON of the resources the national platform holds,
keyed by IHS number (`satusehat`)."""

from __future__ import annotations

from collections.abc import Callable

from .bpjs import task_bpjs
from .city import IHS, NIK
from .generate import SynthCity
from .rsud import task_rsud
from .satusehat import task_satusehat, task_satusehat_patients


def tasks(sc: SynthCity) -> list[tuple[str, tuple]]:
    out: list[tuple[str, tuple]] = [("satusehat", (f.code,)) for f in sc.city.facilities]
    return [*out, ("rsud", ()), ("bpjs", ()), ("satusehat_patients", ())]


TASKS: dict[str, Callable[..., int]] = {
    "rsud": task_rsud,
    "bpjs": task_bpjs,
    "satusehat": task_satusehat,
    "satusehat_patients": task_satusehat_patients,
}
__all__ = ["IHS", "NIK", "TASKS", "tasks"]
