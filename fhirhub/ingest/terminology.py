"""Code translation with the ConceptMaps in ``terminology/conceptmaps`` and ICD-10 cleaning."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from fhirhub.ingest.stamps import file_stamps

Target = tuple[str, str, str | None]  # system, code, display


@dataclass
class ConceptMaps:
    """Every ConceptMap by canonical url: (source system, code) -> target coding."""

    maps: dict[str, dict[tuple[str, str], Target]] = field(default_factory=dict)
    icd10_terminal: frozenset[str] = frozenset()

    def translate(self, urls: list[str], system: str, code: str) -> Target | None:
        for url in urls:
            found = self.maps.get(url, {}).get((system, code))
            if found:
                return found
        return None

    def sources(self, urls: list[str]) -> set[str]:
        """The code systems that the named maps translate from."""
        return {s for url in urls for (s, _c) in self.maps.get(url, {})}


def _read_map(resource: dict) -> dict[tuple[str, str], Target]:
    out: dict[tuple[str, str], Target] = {}
    for group in resource.get("group", []):
        for element in group.get("element", []):
            for target in element.get("target", []):
                if target.get("equivalence") in ("equivalent", "equal", "wider", "subsumes"):
                    out[(group["source"], element["code"])] = (
                        group["target"],
                        target["code"],
                        target.get("display"),
                    )
                    break
    return out


def load_terminology(directory: Path) -> ConceptMaps:
    """Read ``directory`` (``terminology/``); cached until a file in it changes."""
    stamp = file_stamps(directory / "conceptmaps", ".json") + file_stamps(
        directory / "icd10", ".json"
    )
    return _load(directory, stamp)


@lru_cache(maxsize=8)
def _load(directory: Path, stamp: tuple[tuple[str, int, int], ...]) -> ConceptMaps:
    maps = ConceptMaps()
    for path in sorted(directory.glob("conceptmaps/*.json")):
        resource = json.loads(path.read_text())
        maps.maps[resource["url"]] = _read_map(resource)
    terminal: set[str] = set()
    for path in sorted(directory.glob("icd10/*.json")):
        terminal.update(json.loads(path.read_text()).get("codes", []))
    maps.icd10_terminal = frozenset(terminal)
    return maps
