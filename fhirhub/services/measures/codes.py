"""Code lists of the Measures' parameters: ``"Z00.0-Z00.3,Z10,O80-O84"``.

An ICD-10 entry is a code or a range; either includes every sub-code (``Z10`` holds ``Z10.1``,
``I10-I15`` holds ``I15.9``). A range with dotted ends compares at the precision of its ends
(``Z00.0-Z00.3`` holds ``Z00.1`` and ``Z00.10``, not ``Z00.4``). Other lists (LOINC, CVX) are
plain sets of codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True)
class _Range:
    lo: str
    hi: str

    def holds(self, code: str) -> bool:
        if "." in self.lo or "." in self.hi:
            c = code if "." in code else code + ".0"
            return self.lo <= c[: len(self.hi)] <= self.hi
        return self.lo <= code[: len(self.hi)] <= self.hi


@dataclass(frozen=True)
class IcdSet:
    ranges: tuple[_Range, ...]
    # code -> held: a city has a few thousand distinct codes and millions of events
    _known: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def holds(self, code: str) -> bool:
        found = self._known.get(code)
        if found is None:
            found = self._known[code] = any(r.holds(code) for r in self.ranges)
        return found

    def any_of(self, codes: Iterable[str]) -> bool:
        known = self._known
        for c in codes:
            found = known.get(c)
            if found is None:
                found = self.holds(c)
            if found:
                return True
        return False


@lru_cache(maxsize=256)
def icd_set(spec: str) -> IcdSet:
    """The code list ``spec`` (parsed once: the rules ask for it once per person)."""
    ranges = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        ranges.append(_Range(lo.strip(), (hi or lo).strip()))
    return IcdSet(tuple(ranges))


@lru_cache(maxsize=256)
def code_set(spec: str) -> frozenset[str]:
    return frozenset(p.strip() for p in spec.split(",") if p.strip())


@lru_cache(maxsize=256)
def bounds(spec: str) -> tuple[int, int | None]:
    """``"7-15"`` → (7, 15); ``"60-"`` → (60, None); ``"3"`` → (3, 3)."""
    lo, sep, hi = spec.partition("-")
    if not sep:
        return int(lo), int(lo)
    return int(lo), (int(hi) if hi.strip() else None)


def within(value: int, spec: tuple[int, int | None]) -> bool:
    return spec[0] <= value and (spec[1] is None or value <= spec[1])


def band_label(spec: tuple[int, int | None]) -> str:
    return f"{spec[0]}-{spec[1]}" if spec[1] is not None else f"{spec[0]}+"
