"""A Puskesmas's mapping table (``mappings/puskesmas/<code>.yaml``), reloaded when edited."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from fhirhub.ingest.stamps import file_stamps


@dataclass(frozen=True)
class LocalCode:
    system: str
    code: str
    target_system: str
    target_code: str
    target_display: str | None = None


@dataclass(frozen=True)
class FacilityMapping:
    code: str  # PKM05
    name: str
    organization: str  # Organization/org-pkm05
    location: str
    satusehat_organization_id: str
    mrn_system: str
    mrn_pattern: re.Pattern[str] | None
    clock: str
    concept_maps: tuple[str, ...] = ()
    local_codes: dict[tuple[str, str], LocalCode] = field(default_factory=dict)


def _parse(raw: dict) -> FacilityMapping:  # type: ignore[type-arg]
    local = {}
    for item in raw.get("local_codes") or []:
        lc = LocalCode(
            str(item["system"]),
            str(item["code"]),
            str(item["target_system"]),
            str(item["target_code"]),
            item.get("target_display"),
        )
        local[(lc.system, lc.code)] = lc
    pattern = raw.get("mrn_pattern")
    return FacilityMapping(
        code=str(raw["code"]),
        name=str(raw["name"]),
        organization=str(raw["organization"]),
        location=str(raw.get("location", "")),
        satusehat_organization_id=str(raw["satusehat_organization_id"]),
        mrn_system=str(raw["mrn_system"]),
        mrn_pattern=re.compile(pattern) if pattern else None,
        clock=str(raw.get("clock", "+08:00")),
        concept_maps=tuple(raw.get("concept_maps") or ()),
        local_codes=local,
    )


class Mappings:
    """All Puskesmas mapping tables of one directory, by code and by record-number system."""

    def __init__(self, facilities: list[FacilityMapping]) -> None:
        self.by_code = {f.code: f for f in facilities}
        self.by_mrn_system = {f.mrn_system: f for f in facilities}
        self.by_organization = {f.organization: f for f in facilities}
        self.by_satusehat_id = {f.satusehat_organization_id: f for f in facilities}


def load_mappings(directory: Path) -> Mappings:
    return _load(file_stamps(directory, ".yaml"))


@lru_cache(maxsize=8)
def _load(stamp: tuple[tuple[str, int, int], ...]) -> Mappings:
    return Mappings([_parse(yaml.safe_load(Path(name).read_text())) for name, _m, _s in stamp])
