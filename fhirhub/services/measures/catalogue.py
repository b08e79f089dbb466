"""The indicator catalogue as data: FHIR Measures (``measures/Measure/*.json``), the
ViewDefinitions they read (``measures/views/*.json``) and the kelurahan → Puskesmas table
(``measures/puskesmas-areas.json``).

A Measure names its rule (extension ``measure-rule``) and carries every number and code list of
that rule as parameters (extension ``measure-parameter``: ``name`` and ``value``), so Dinkes can
follow a new regulation by editing the JSON. The views it reads are its ``relatedArtifact`` of
type ``depends-on``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from fhirhub.errors import FhirError, Issue
from fhirhub.services.measures.population import PopulationTable, load_tables

BASE = "https://fhirhub.baubaukota.go.id"
SD = BASE + "/StructureDefinition/"
RULE_URL = SD + "measure-rule"
KIND_URL = SD + "measure-denominator-kind"
PARAM_URL = SD + "measure-parameter"
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"


class CatalogueError(FhirError):
    """A Measure or view file of ``measures/`` that cannot be used (a server-side problem)."""

    def __init__(self, diagnostics: str, where: str) -> None:
        super().__init__(500, [Issue("exception", diagnostics, (where,))])


@dataclass(frozen=True)
class Group:
    code: str | None  # nut-02: wasting, underweight; mor-02: neonatal, infant; else None
    populations: tuple[str, ...]  # measure-population codes
    strata: tuple[str, ...]  # kelurahan, puskesmas, sex, age-group, facility-week, ...


@dataclass(frozen=True)
class MeasureDef:
    id: str
    url: str
    version: str | None
    title: str
    rule: str
    kind: str  # P (projected population), C (counted), count
    params: Mapping[str, tuple[Any, ...]]
    views: tuple[str, ...]  # canonical URLs of the ViewDefinitions it reads
    groups: tuple[Group, ...]
    resource: Mapping[str, Any] = field(repr=False)

    def value(self, name: str, default: Any = None) -> Any:
        values = self.params.get(name)
        if not values:
            if default is None:
                raise CatalogueError(
                    f"Measure {self.id} lacks its parameter {name!r}", f"Measure/{self.id}"
                )
            return default
        return values[0]

    def values(self, name: str) -> tuple[Any, ...]:
        return self.params.get(name, ())


@dataclass(frozen=True)
class Catalogue:
    measures: Mapping[str, MeasureDef]
    views: Mapping[str, Mapping[str, Any]]  # by canonical URL
    puskesmas: Mapping[str, str]  # kelurahan code -> Puskesmas code
    puskesmas_codes: tuple[str, ...]
    populations: tuple[PopulationTable, ...] = ()

    def view(self, url: str) -> Mapping[str, Any]:
        found = self.views.get(url)
        if found is None:
            raise CatalogueError(f"no ViewDefinition {url} in measures/views", "relatedArtifact")
        return found

    def view_named(self, name: str) -> Mapping[str, Any]:
        return self.view(f"{BASE}/ViewDefinition/{name}")


def _load_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise CatalogueError(f"{path.name}: {exc}", str(path)) from None


def _parameter(ext: Mapping[str, Any], where: str) -> tuple[str, Any]:
    name = value = None
    for part in ext.get("extension") or []:
        if part.get("url") == "name":
            name = part.get("valueCode") or part.get("valueString")
        elif part.get("url") == "value":
            for key in ("valueInteger", "valueDecimal", "valueString", "valueCode"):
                if key in part:
                    value = part[key]
    if not isinstance(name, str) or value is None:
        raise CatalogueError("a measure-parameter needs a name and a value", where)
    return name, value


def parse_measure(res: Mapping[str, Any]) -> MeasureDef:
    mid = res.get("id")
    where = f"Measure/{mid}"
    if res.get("resourceType") != "Measure" or not isinstance(mid, str):
        raise CatalogueError("not a Measure with an id", where)
    rule = kind = None
    params: dict[str, list[Any]] = {}
    for i, ext in enumerate(res.get("extension") or []):
        url = ext.get("url")
        if url == RULE_URL:
            rule = ext.get("valueCode")
        elif url == KIND_URL:
            kind = ext.get("valueCode")
        elif url == PARAM_URL:
            name, value = _parameter(ext, f"{where}.extension[{i}]")
            params.setdefault(name, []).append(value)
    if not rule or not kind:
        raise CatalogueError("a Measure needs its measure-rule and denominator kind", where)
    groups = []
    for g in res.get("group") or []:
        codings = (g.get("code") or {}).get("coding") or []
        pops = tuple(
            c["code"]
            for p in g.get("population") or []
            for c in (p.get("code") or {}).get("coding") or []
            if c.get("system") == POPULATION_SYSTEM
        )
        strata = tuple(
            c["code"]
            for s in g.get("stratifier") or []
            for c in (s.get("code") or {}).get("coding") or []
        )
        groups.append(Group(codings[0]["code"] if codings else None, pops, strata))
    views = tuple(
        a["resource"]
        for a in res.get("relatedArtifact") or []
        if a.get("type") == "depends-on" and isinstance(a.get("resource"), str)
    )
    return MeasureDef(
        id=mid,
        url=res.get("url") or f"{BASE}/Measure/{mid}",
        version=res.get("version"),
        title=res.get("title") or mid,
        rule=rule,
        kind=kind,
        params={k: tuple(v) for k, v in params.items()},
        views=views,
        groups=tuple(groups),
        resource=res,
    )


@lru_cache(maxsize=4)
def _cached(directory: Path, stamp: tuple[tuple[str, int], ...]) -> Catalogue:
    measures: dict[str, MeasureDef] = {}
    for path in sorted((directory / "Measure").glob("*.json")):
        m = parse_measure(_load_json(path))
        measures[m.id] = m
    views: dict[str, Mapping[str, Any]] = {}
    for path in sorted((directory / "views").glob("*.json")):
        view = _load_json(path)
        url = view.get("url") or f"{BASE}/ViewDefinition/{view.get('name')}"
        views[url] = view
    areas = _load_json(directory / "puskesmas-areas.json")
    of: dict[str, str] = {}
    for pkm in areas.get("puskesmas", []):
        for kel in pkm.get("kelurahan", []):
            of[kel] = pkm["code"]
    codes = tuple(p["code"] for p in areas.get("puskesmas", []))
    return Catalogue(measures, views, of, codes, tuple(load_tables(directory / "population")))


def load_catalogue(directory: Path) -> Catalogue:
    """The catalogue in ``directory``, read again when one of its files changes."""
    files = [
        *(directory / "Measure").glob("*.json"),
        *(directory / "views").glob("*.json"),
        directory / "puskesmas-areas.json",
        *(directory / "population").glob("*"),
    ]
    stamp = tuple(sorted((str(p), p.stat().st_mtime_ns) for p in files if p.exists()))
    return _cached(directory, stamp)
