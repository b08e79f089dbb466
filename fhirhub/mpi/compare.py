"""The comparison vector of a pair of records: one agreement level per field.

Levels are small integers, 0 the strongest agreement; :data:`MISSING` (-1) means the field
cannot be compared (absent on either side) and carries no weight. Each field's levels are named
in :data:`LEVELS` (the order of the tuple is the level number), so a score breakdown can say
"name: close" rather than "name: 2".
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler

from fhirhub.mpi.dates import DATE_LEVELS, compare_dates
from fhirhub.mpi.features import Features
from fhirhub.mpi.names import ParsedName, spelling_key

MISSING = -1  # the same as dates.MISSING

LEVELS: dict[str, tuple[str, ...]] = {
    "name": ("exact", "subset", "close", "share", "jw80", "else"),
    "birth_date": DATE_LEVELS,
    "nik": ("same", "one_digit", "different"),
    "phone": ("shared", "different"),
    "kelurahan": ("same_rt", "same", "different"),
    "bpjs": ("same", "different"),
    "ihs": ("same", "different"),
    "gender": ("same", "different"),
    # Generic evidence (any country): an identifier of another system, and the postal address.
    "other_id": ("same", "one_typo", "different"),
    "postcode": ("same", "one_digit", "different"),
    "locality": ("same", "close", "different"),
    "street": ("same", "close", "similar", "different"),
}
FIELDS = tuple(LEVELS)
_INDEX = {f: i for i, f in enumerate(FIELDS)}


@dataclass(frozen=True)
class Comparison:
    """A pair's levels (``levels[i]`` for ``FIELDS[i]``) and the name similarity behind them."""

    levels: tuple[int, ...]
    shared_tokens: tuple[str, ...] = ()  # spelling keys both names hold (for TF adjustment)
    name_similarity: float = 0.0

    def level(self, field: str) -> int:
        return self.levels[_INDEX[field]]

    def named(self) -> dict[str, str]:
        """``{"name": "exact", "nik": "missing", ...}``: the breakdown a reviewer reads."""
        return {
            f: ("missing" if lv == MISSING else LEVELS[f][lv])
            for f, lv in zip(FIELDS, self.levels, strict=True)
        }


def compare(a: Features, b: Features) -> Comparison:
    """The comparison vector of two records (see the module's docstring)."""
    name_level, shared, similarity = compare_names(a, b)
    return Comparison(
        levels=(
            name_level,
            compare_dates(a.birth_date, b.birth_date),
            compare_nik(own_nik(a), own_nik(b)),
            _set_level(a.phones, b.phones),
            _kelurahan(a, b),
            _equal_level(a.bpjs, b.bpjs),
            _equal_level(a.ihs, b.ihs),
            _equal_level(a.gender, b.gender),
            compare_other_ids(a.other_ids, b.other_ids),
            compare_code(a.postcode, b.postcode),
            compare_text(a.locality, b.locality),
            compare_street(a.street, b.street),
        ),
        shared_tokens=shared,
        name_similarity=similarity,
    )


def compare_names(a: Features, b: Features) -> tuple[int, tuple[str, ...], float]:
    """Level, shared spelling keys and token-set Jaro-Winkler of two records' names.

    A "By. Ny." placeholder names the mother: it is compared with another placeholder (the
    mothers' names) but not with a real name (missing). The Buton prefix, honorifics and degrees
    are not compared at all.
    """
    if a.name is None or b.name is None or a.name.newborn != b.name.newborn:
        return MISSING, (), 0.0
    return name_level(a.name, b.name)


def name_level(a: ParsedName, b: ParsedName) -> tuple[int, tuple[str, ...], float]:
    ka, kb = a.key, b.key
    if not ka or not kb:
        return MISSING, (), 0.0
    if ka != kb and (len(ka) > 1 or len(kb) > 1):
        ka, kb = _rejoined(a.tokens, set(kb)), _rejoined(b.tokens, set(ka))
    shared = tuple(sorted(set(ka) & set(kb)))
    if ka == kb:
        return 0, shared, 1.0
    similarity = token_set_jw(ka, kb)
    set_a, set_b = set(ka), set(kb)
    short, long_ = (set_a, set_b) if len(set_a) <= len(set_b) else (set_b, set_a)
    if short <= long_:
        return 1, shared, similarity
    typo = _one_typo_apart(short, long_) and (
        len(set_a) != len(set_b) or _one_typo_apart(long_, short)  # as many tokens: both ways
    )
    if similarity >= 0.92 or typo:
        return 2, shared, similarity
    if shared:  # a token in common, another not: a surname changed by marriage, a typo'd given
        return 3, shared, similarity
    return (4 if similarity >= 0.8 else 5), shared, similarity


def _rejoined(tokens: tuple[str, ...], other: set[str]) -> tuple[str, ...]:
    """Spelling keys of a name whose two neighbouring words are one word of the other name
    split by a space (``NUR HAYATI`` / ``NURHAYATI``, ``MADEL INE`` / ``MADELINE``), joined."""
    keys = [spelling_key(t) for t in tokens]
    i = 0
    while i < len(keys) - 1:
        joined = spelling_key(tokens[i] + tokens[i + 1]) if len(keys) == len(tokens) else None
        joined = joined or keys[i] + keys[i + 1]
        if (
            keys[i] not in other
            and keys[i + 1] not in other
            and any(OSA.distance(joined, o, score_cutoff=1) <= 1 for o in other)
        ):
            keys[i : i + 2] = [joined]
        else:
            i += 1
    return tuple(sorted(keys))


def token_set_jw(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Each token of the shorter name against its best match in the longer, averaged; of two
    names of as many tokens, the lower of the two ways (the same whichever comes first:
    ``1 1 2`` against ``2 2 2`` is 1.0 one way, 0.33 the other)."""
    if len(a) == len(b):
        return min(_best_matches(a, b), _best_matches(b, a))
    return _best_matches(a, b) if len(a) < len(b) else _best_matches(b, a)


def _best_matches(short: tuple[str, ...], long_: tuple[str, ...]) -> float:
    best = [max(JaroWinkler.similarity(t, u) for u in long_) for t in short]
    return sum(best) / len(best)


def _one_typo_apart(short: set[str], long_: set[str]) -> bool:
    # Short names defeat Jaro-Winkler (SITI/STII 0.83): every token of the shorter name within
    # one edit (a letter changed, dropped, added, or two swapped) of a token of the longer.
    return all(any(OSA.distance(t, u, score_cutoff=1) <= 1 for u in long_) for t in short)


def own_nik(f: Features) -> str | None:
    # A NIK whose birth date is far from the record's is a relative's (a parent's NIK typed for
    # a child): it says nothing for or against the record's own NIK.
    return f.nik.value if f.nik is not None and not f.nik_foreign else None


def nik_guard(f: Features) -> str | None:
    """The NIK the ``different-nik`` rule holds a record to: its own, unless the record is a
    newborn's placeholder beside the mother's NIK. Two records whose guards are more than one
    typo apart (``compare_nik`` 2) never link, whatever else they share."""
    if f.newborn_placeholder and f.nik_ibu:
        return None
    return own_nik(f)


def compare_nik(a: str | None, b: str | None) -> int:
    """same / one digit changed or two adjacent digits swapped / different / missing."""
    if a is None or b is None:
        return MISSING
    if a == b:
        return 0
    return 1 if _one_typo_apart_in_place(a, b) else 2


def compare_other_ids(a: tuple[tuple[str, str], ...], b: tuple[tuple[str, str], ...]) -> int:
    """Over the systems both records have: a value shared / one typo apart (a character
    changed, dropped, added, or two adjacent swapped) / different; missing when no system is
    shared (a passport says nothing against a national id)."""
    if not a or not b:
        return MISSING
    systems = {s for s, _ in a} & {s for s, _ in b}
    if not systems:
        return MISSING
    best = 2
    for sa, va in a:
        if sa not in systems:
            continue
        for sb, vb in b:
            if sb == sa:
                if va == vb:
                    return 0
                if OSA.distance(va, vb, score_cutoff=1) <= 1:
                    best = 1
    return best


def compare_code(a: str | None, b: str | None) -> int:
    """A postcode: same / one character changed or two adjacent swapped / different."""
    if a is None or b is None:
        return MISSING
    if a == b:
        return 0
    return 1 if _one_typo_apart_in_place(a, b) else 2


def compare_text(a: str | None, b: str | None) -> int:
    """A place name: same / close (Jaro-Winkler at least 0.9) / different."""
    if a is None or b is None:
        return MISSING
    if a == b:
        return 0
    return 1 if JaroWinkler.similarity(a, b) >= 0.9 else 2


def compare_street(a: str | None, b: str | None) -> int:
    """Address lines: same (spaces aside) / close (the same house numbers, and every word of
    the shorter line within Jaro-Winkler 0.9 of a word of the longer, on average) / similar
    (token-sorted similarity at least 0.75, or words close with other numbers) / different.
    A neighbour at No. 19 of one's own street at No. 91 is at most similar."""
    if a is None or b is None:
        return MISSING
    if a == b or a.replace(" ", "") == b.replace(" ", ""):
        return 0
    ta, tb = a.split(), b.split()
    words = token_set_jw(tuple(ta), tuple(tb))
    same_numbers = sorted(t for t in ta if t.isdigit()) == sorted(t for t in tb if t.isdigit())
    if words >= 0.9 and same_numbers:
        return 1
    return 2 if words >= 0.9 or fuzz.token_sort_ratio(a, b) >= 75 else 3


def _one_typo_apart_in_place(a: str, b: str) -> bool:
    """Of one length, and one character changed or two adjacent swapped (between strings of
    one length, an edit distance of one with adjacent swaps allowed means exactly that)."""
    return len(a) == len(b) and OSA.distance(a, b, score_cutoff=1) <= 1


def _equal_level(a: str | None, b: str | None) -> int:
    if a is None or b is None:
        return MISSING
    return 0 if a == b else 1


def _set_level(a: frozenset[str], b: frozenset[str]) -> int:
    if not a or not b:
        return MISSING
    return 0 if a & b else 1


def _kelurahan(a: Features, b: Features) -> int:
    if a.kelurahan is None or b.kelurahan is None:
        return MISSING
    if a.kelurahan != b.kelurahan:
        return 2
    same_rt = a.rt is not None and (a.rt, a.rw) == (b.rt, b.rw)
    return 0 if same_rt else 1
