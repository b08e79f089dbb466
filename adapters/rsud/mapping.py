"""The RSUD mapping tables (``mappings/rsud/``), read once and again when a file changes.

- ``facilities.yaml``: the hospitals that send HL7 v2 (MSH-4), their record-number system,
  SATUSEHAT organization id, local coding systems and local code translations;
- ``messages.yaml``: message maps, what each message type and trigger becomes;
- ``segments/<SEG>-<Resource>.yaml``: segment maps, field by field;
- ``codes/*.yaml``: code tables (HL7 tables to FHIR codes), and the identifier systems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from fhirhub.ingest.stamps import file_stamps


@dataclass(frozen=True)
class LocalCode:
    target_system: str
    target_code: str
    target_display: str | None = None


@dataclass(frozen=True)
class Facility:
    code: str  # RSUD01
    name: str
    sending_facility: tuple[str, ...]
    organization: str
    location: str
    satusehat_organization_id: str
    mrn_system: str
    mrn_authorities: frozenset[str]
    clock: str
    local_systems: dict[str, str]
    concept_maps: tuple[str, ...]
    local_codes: dict[tuple[str, str], LocalCode]


@dataclass(frozen=True)
class FieldMap:
    field: int
    to: str
    type: str
    table: str | None = None
    many: bool = False
    use: str | None = None
    role: str | None = None
    replaces: str | None = None
    only_if_missing: bool = False


@dataclass(frozen=True)
class SegmentMap:
    segment: str
    resource: str
    fields: tuple[FieldMap, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    name: str
    system: str | None
    map: dict[str, Any]
    default: Any = None

    def lookup(self, code: str) -> Any:
        if code in self.map:
            return self.map[code]
        upper = code.upper()
        return self.map.get(upper, self.default)


@dataclass(frozen=True)
class IdentifierRule:
    type: str
    authority: str
    system: str


@dataclass
class Mappings:
    facilities: list[Facility]
    messages: dict[str, dict[str, Any]]
    segments: dict[str, SegmentMap]
    tables: dict[str, Table]
    identifier_rules: list[IdentifierRule]
    by_sender: dict[str, Facility] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in self.facilities:
            for name in (f.code, *f.sending_facility):
                self.by_sender[name.strip().upper()] = f

    def facility(self, sending_facility: str) -> Facility | None:
        return self.by_sender.get(sending_facility.strip().upper())

    def table(self, name: str) -> Table:
        return self.tables[name]


def _facility(raw: dict[str, Any]) -> Facility:
    local = {
        (str(i["system"]), str(i["code"])): LocalCode(
            str(i["target_system"]), str(i["target_code"]), i.get("target_display")
        )
        for i in raw.get("local_codes") or []
    }
    return Facility(
        code=str(raw["code"]),
        name=str(raw["name"]),
        sending_facility=tuple(str(s) for s in raw.get("sending_facility") or ()),
        organization=str(raw["organization"]),
        location=str(raw.get("location", "")),
        satusehat_organization_id=str(raw["satusehat_organization_id"]),
        mrn_system=str(raw["mrn_system"]),
        mrn_authorities=frozenset(str(a).upper() for a in raw.get("mrn_authorities") or ()),
        clock=str(raw.get("clock", "+08:00")),
        local_systems={str(k).upper(): str(v) for k, v in (raw.get("local_systems") or {}).items()},
        concept_maps=tuple(raw.get("concept_maps") or ()),
        local_codes=local,
    )


def load_mappings(directory: Path) -> Mappings:
    return _load(str(directory), file_stamps(directory, ".yaml", recursive=True))


@lru_cache(maxsize=8)
def _load(directory: str, stamp: tuple[tuple[str, int, int], ...]) -> Mappings:
    root = Path(directory)
    facilities = [
        _facility(f)
        for f in (yaml.safe_load((root / "facilities.yaml").read_text()) or {})["facilities"]
    ]
    messages = yaml.safe_load((root / "messages.yaml").read_text())["messages"]
    segments: dict[str, SegmentMap] = {}
    for path in sorted((root / "segments").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        seg = path.stem.split("-", 1)[0]
        fields = tuple(FieldMap(**f) for f in raw.get("fields") or [])
        options = {k: v for k, v in raw.items() if k not in ("fields", "resource")}
        segments[seg] = SegmentMap(seg, str(raw["resource"]), fields, options)
    tables: dict[str, Table] = {}
    rules: list[IdentifierRule] = []
    for path in sorted((root / "codes").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if path.stem == "identifier-systems":
            rules = [
                IdentifierRule(
                    str(r["type"]).upper(), str(r["authority"]).upper(), str(r["system"])
                )
                for r in raw["rules"]
            ]
            continue
        tables[path.stem] = Table(
            path.stem,
            raw.get("system"),
            {str(k): v for k, v in (raw.get("map") or {}).items()},
            raw.get("default"),
        )
    return Mappings(facilities, messages, segments, tables, rules)
