"""Population denominators (kind P) from the versioned tables of ``measures/population``.

``versions.json`` lists the versions (year, source, file); each file holds counts by area (a
Kemendagri kelurahan, kecamatan or city code), target group, sex and age band, either of the last
two empty for "all". A report uses the newest version whose year is at most the year of the
period end. A stratum gets a denominator only when the table can give it: by kelurahan or
Puskesmas only from kelurahan rows, by sex or age group only from rows broken down that way.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass(frozen=True)
class PopRow:
    area: str
    target: str
    sex: str
    age_band: str
    count: int


@dataclass(frozen=True)
class PopulationTable:
    id: str
    year: int
    source: str
    rows: tuple[PopRow, ...]

    def denominator(
        self, target: str, where: Callable[[PopRow], bool], *, needs: str | None = None
    ) -> int | None:
        """The sum over the rows of ``target`` that ``where`` keeps; None when the table has no
        such rows or they are not broken down by ``needs`` (kelurahan, sex, age-group)."""
        rows = [r for r in self.rows if r.target == target]
        if not rows:
            return None
        if needs == "kelurahan" and any(len(r.area) != 10 for r in rows):
            return None
        if needs == "sex" and any(not r.sex for r in rows):
            return None
        if needs == "age-group" and any(not r.age_band for r in rows):
            return None
        return sum(r.count for r in rows if where(r))


def load_tables(directory: Path) -> Sequence[PopulationTable]:
    index = directory / "versions.json"
    if not index.exists():
        return ()
    out = []
    for v in orjson.loads(index.read_bytes()).get("versions", []):
        with (directory / v["file"]).open(newline="", encoding="utf-8") as fh:
            rows = tuple(
                PopRow(
                    r["area"].strip(),
                    r["target"].strip(),
                    (r.get("sex") or "").strip(),
                    (r.get("age_band") or "").strip(),
                    int(r["count"]),
                )
                for r in csv.DictReader(fh)
            )
        out.append(PopulationTable(v["id"], int(v["year"]), v.get("source", ""), rows))
    return tuple(sorted(out, key=lambda t: (t.year, t.id)))


def table_for(tables: Sequence[PopulationTable], year: int) -> PopulationTable | None:
    usable = [t for t in tables if t.year <= year]
    return usable[-1] if usable else None


def stratum_filter(
    name: str, value: str, puskesmas_of: Mapping[str, str]
) -> Callable[[PopRow], bool]:
    if name == "kelurahan":
        return lambda r: r.area == value
    if name == "puskesmas":
        return lambda r: puskesmas_of.get(r.area) == value
    if name == "sex":
        return lambda r: r.sex == value
    if name == "age-group":
        return lambda r: r.age_band == value
    return lambda r: False
