"""Kelurahan names to Kemendagri codes, typos forgiven (rapidfuzz), from ``terminology/regions``.

Codes carry no dots: province 2 digits, city 4, kecamatan (district) 6, kelurahan (village) 10.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rapidfuzz import fuzz, process

from fhirhub.ingest.canonical import ADMINISTRATIVE_CODE

# fuzz.ratio scores: one typo in an eight-letter name scores about 88, a different name far
# lower. A wrong code is worse than none, so a match must be close and unambiguous.
MIN_SCORE = 85.0
SURE = 92.0
MARGIN = 10.0
_PREFIX = re.compile(r"^(kel(urahan)?|desa|ds)\.?\s+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Village:
    code: str
    name: str
    district: str
    city: str
    province: str


class Regions:
    def __init__(self, table: dict) -> None:
        province = table["province"]["code"]
        city = table["city"]["code"]
        self.villages: dict[str, Village] = {}
        for kec in table["kecamatan"]:
            for kel in kec["kelurahan"]:
                self.villages[kel["code"]] = Village(
                    kel["code"], kel["name"], kec["code"], city, province
                )
        self._names = {v.code: _key(v.name) for v in self.villages.values()}

    def by_name(self, name: str) -> Village | None:
        """The kelurahan a (possibly misspelt) name means, or None when no name is close."""
        key = _key(name)
        if not key:
            return None
        found = process.extract(
            key, self._names, scorer=fuzz.ratio, score_cutoff=MIN_SCORE - MARGIN, limit=2
        )
        if not found or found[0][1] < MIN_SCORE:
            return None
        best_score, code = found[0][1], found[0][2]
        runner_up = found[1][1] if len(found) > 1 else 0.0
        # A typo can bring a short name nearer another one ("Waleo": Wale or Wameo?): below
        # SURE, the best must also stand clear of the next, or no code is given at all.
        if best_score < SURE and best_score - runner_up < MARGIN:
            return None
        return self.villages[code]

    def from_text(self, text: str) -> Village | None:
        """The kelurahan named in an address text (``…, Kel. Waborobo, Kota Baubau``)."""
        parts = [p.strip() for p in text.split(",")]
        marked = [p for p in parts if _PREFIX.match(p)]
        for part in marked or parts:
            found = self.by_name(part)
            if found:
                return found
        return None


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", _PREFIX.sub("", name.strip())).lower()


def administrative_code(village: Village, rt: str | None = None, rw: str | None = None) -> dict:
    parts = [
        ("province", village.province),
        ("city", village.city),
        ("district", village.district),
        ("village", village.code),
        ("rt", rt),
        ("rw", rw),
    ]
    return {
        "url": ADMINISTRATIVE_CODE,
        "extension": [{"url": k, "valueCode": v} for k, v in parts if v],
    }


@lru_cache(maxsize=4)
def load_regions(directory: Path) -> Regions:
    tables = sorted(directory.glob("*.json"))
    if not tables:
        raise FileNotFoundError(f"no region table in {directory}")
    merged: Regions | None = None
    for path in tables:
        regions = Regions(json.loads(path.read_text()))
        if merged is None:
            merged = regions
        else:
            merged.villages.update(regions.villages)
            merged._names.update(regions._names)
    assert merged is not None
    return merged
