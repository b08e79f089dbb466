"""Indonesian personal names, normalised for matching (the patient index's first step).

What a clerk types for one person varies: case and punctuation, honorifics (``H.``, ``Hj.``,
``Ny.``), academic degrees (``, S.Pd.``), Buton prefixes (``La``/``Wa``, nobility ``La Ode``/
``Wa Ode``, also ``Laode``, ``L.O.``), ``bin``/``binti`` and the father's name, newborn
placeholders (``By. Ny. <mother>``) and old spellings (Soekarno/Sukarno, Djoko/Joko,
Tjahjono/Cahyono, Jusuf/Yusuf). :func:`parse_name` separates what identifies the person (the
name tokens) from what does not (prefix, honorifics, degrees) and marks placeholders, so that a
scorer compares like with like. :func:`spelling_key` folds old and new spellings (EYD, 1972)
onto one form, both ways, since a modern ``j`` may be an old ``dj`` and an old ``j`` a modern
``y``. Sources: ``reference/mpi.md`` section 10 of the project's research notes.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

# Titles of address and religious honorifics: said of the person, not part of the name.
HONORIFICS = frozenset(
    {
        "TN", "TUAN", "NY", "NYONYA", "NN", "NONA", "SDR", "SDRI", "SAUDARA", "SAUDARI",
        "BPK", "BAPAK", "PAK", "IBU", "BU", "AN", "ANAK", "H", "HJ", "HAJI", "HAJJAH", "HAJAH",
        "KH", "UST", "USTADZ", "USTADZAH", "DR", "DRG", "PROF", "IR", "DRS", "DRA", "MR", "MRS",
    }
)  # fmt: skip
# Academic and professional degrees, written after the name (dots and spaces removed).
DEGREES = frozenset(
    {
        "SPD", "SPDI", "SE", "SH", "SHI", "SKEP", "SKM", "SST", "SSOS", "SAG", "SIP", "SKOM",
        "ST", "SKED", "SFARM", "SSI", "SPSI", "STP", "SPT", "SHUT", "SIKOM", "SGZ", "STR",
        "AMD", "AMDKEB", "AMDKEP", "AMKEB", "AMKEP", "AMK", "AMG", "AMF", "AMAK", "APT",
        "MSI", "MM", "MKES", "MPD", "MH", "MT", "MA", "MAG", "MKM", "MKEP", "MSC", "PHD",
        "SPOG", "SPA", "SPPD", "SPB", "SPM", "SPTHT", "SPKK", "SPS", "SPJP", "SPAN", "SPRAD",
        "NERS", "BSC", "BA",
    }
)  # fmt: skip
# Newborn placeholders: "By. Ny. Siti", "BAYI NY SITI", "Bayi Nyonya Siti", "By Siti", "Bayi".
_BABY = frozenset({"BY", "BAYI", "BBL"})
_MOTHER = frozenset({"NY", "NYONYA", "IBU"})
_PATRONYMIC = frozenset({"BIN", "BINTI", "BT", "BN"})
# Spellings of "Muhammad" and its abbreviations, one common name (term frequency handles the rest).
_MUHAMMAD = frozenset(
    {
        "MUHAMMAD", "MUHAMAD", "MUHAMMED", "MUHAMED", "MOHAMMAD", "MOHAMAD", "MOHAMMED",
        "MOHAMED", "MOCHAMMAD", "MOCHAMAD", "MOCHAMMED", "MUCHAMMAD", "MUCHAMAD", "MOH",
        "MOCH", "MUH", "MUCH", "MHD", "MUHD", "MOHD", "MUHAMAT", "MUHAMMAT",
    }
)  # fmt: skip

_NOT_LETTERS = re.compile(r"[^A-Z\s,]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ParsedName:
    """A name taken apart. ``tokens`` identify the person; the rest is weak evidence at most."""

    tokens: tuple[str, ...]
    prefix: str | None = None  # "LA", "WA", "LA ODE", "WA ODE"
    honorifics: frozenset[str] = field(default_factory=frozenset)
    degrees: frozenset[str] = field(default_factory=frozenset)
    father: tuple[str, ...] = ()  # after bin/binti
    newborn: bool = False  # a "By. Ny. <mother>" placeholder: the tokens are the mother's
    sex_hint: str | None = None  # "male"/"female" from La/Wa, Hj., Ny., binti, ...

    @property
    def key(self) -> tuple[str, ...]:
        """The tokens in spelling-key form, sorted: order-insensitive comparison."""
        return tuple(sorted(spelling_key(t) for t in self.tokens))


def fold(text: str) -> str:
    """Upper case ASCII letters, commas and single spaces; accents and other marks dropped."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii").upper()
    # A dot or an apostrophe joins nothing ("S.Pd." is one degree, "Ma'ruf" one name).
    ascii_only = re.sub(r"(?<=[A-Z])[.'’`](?=[A-Z])", "", ascii_only)
    return _SPACES.sub(" ", _NOT_LETTERS.sub(" ", ascii_only)).strip()


def parse_name(text: str) -> ParsedName:
    """Take a name as a clerk typed it apart (see the module's docstring)."""
    folded = fold(text)
    head, _, tail = folded.partition(",")
    words = head.split()
    degrees: set[str] = set()
    honorifics: set[str] = set()
    # After the first comma come degrees and suffixed titles ("SITI AMINAH, NY", ", S.PD, M.SI");
    # anything else there is a name part written in reverse ("AMINAH, SITI").
    for part in tail.replace(",", " ").split():
        if part in DEGREES:
            degrees.add(part)
        elif part in HONORIFICS:
            honorifics.add(part)
        else:
            words.append(part)
    newborn, words = _newborn(words)
    while words and words[0] in HONORIFICS:
        honorifics.add(words.pop(0))
    while words and words[-1] in DEGREES | HONORIFICS:
        part = words.pop()
        (degrees if part in DEGREES else honorifics).add(part)
    prefix, words = _buton_prefix(words)
    words, father, patronymic = _patronymic(words)
    tokens = tuple("MUHAMMAD" if w in _MUHAMMAD else w for w in words if w not in DEGREES)
    return ParsedName(
        tokens=tokens,
        prefix=prefix,
        honorifics=frozenset(honorifics),
        degrees=frozenset(degrees),
        father=father,
        newborn=newborn,
        sex_hint=None if newborn else _sex_hint(prefix, honorifics, patronymic),
    )


def _newborn(words: list[str]) -> tuple[bool, list[str]]:
    if not words or words[0] not in _BABY:
        return False, words
    rest = words[1:]
    if rest and rest[0] in _MOTHER:
        rest = rest[1:]
    return True, rest


def _buton_prefix(words: list[str]) -> tuple[str | None, list[str]]:
    if not words:
        return None, words
    first = words[0]
    if first in ("LAODE", "LAODHE", "WAODE", "WAODHE", "LO", "WO"):
        return ("LA ODE" if first[0] == "L" else "WA ODE"), words[1:]
    if first in ("LA", "WA") and len(words) > 1:
        if words[1] in ("ODE", "ODHE"):
            return f"{first} ODE", words[2:]
        return first, words[1:]
    return None, words


def _patronymic(words: list[str]) -> tuple[list[str], tuple[str, ...], str | None]:
    for i, w in enumerate(words):
        if w in _PATRONYMIC and 0 < i < len(words) - 1:
            return words[:i], tuple(words[i + 1 :]), w
    return words, (), None


def _sex_hint(prefix: str | None, honorifics: set[str], patronymic: str | None) -> str | None:
    female = {"HJ", "HAJJAH", "HAJAH", "NY", "NYONYA", "NN", "NONA", "SDRI", "IBU", "BU"}
    male = {"TN", "TUAN", "H", "HAJI", "BPK", "BAPAK", "PAK"}
    hints = set()
    if prefix:
        hints.add("female" if prefix.startswith("W") else "male")
    if honorifics & female or patronymic in ("BINTI", "BT"):
        hints.add("female")
    if honorifics & male or patronymic in ("BIN", "BN"):
        hints.add("male")
    return hints.pop() if len(hints) == 1 else None


# Old spelling to EYD, applied in this order; then J and Y are one letter (an old J is a
# modern Y, an old DJ a modern J, so DJOKO, JOKO and YOKO share a key, as do JUSUF and YUSUF).
_SPELLING = (
    ("OE", "U"),
    ("DJ", "J"),
    ("TJ", "C"),
    ("CH", "KH"),
    ("SJ", "SY"),
    ("NJ", "NY"),
    ("IE", "I"),
    ("DH", "D"),
    ("TH", "T"),
    ("PH", "F"),
    ("Q", "K"),
    ("J", "Y"),
)
_DOUBLED = re.compile(r"(.)\1+")


@functools.lru_cache(maxsize=1 << 16)  # names repeat; scoring asks for the same keys often
def spelling_key(token: str) -> str:
    """One form for the old and new spellings of a name token (upper case in, upper case out).

    ``SOEKARNO``/``SUKARNO``, ``DJOKO``/``JOKO``, ``TJAHJONO``/``CAHYONO``, ``JUSUF``/``YUSUF``,
    ``SJAHRIR``/``SYAHRIR``, ``CHAIRUL``/``KHAIRUL``, ``FATIMAH``/``FATIMA``, ``ABDULLAH``/
    ``ABDULAH`` each give one key. A key is for comparison only, never shown.
    """
    key, previous = token, None
    while key != previous:  # to a fixed point: "IEE" -> "IE" -> "I"
        previous = key
        for old, new in _SPELLING:
            key = key.replace(old, new)
        key = _DOUBLED.sub(r"\1", key)
        if len(key) > 2 and key.endswith("H") and key[-2] in "AIUEO":
            key = key[:-1]
    return key


_VOWELS = re.compile(r"[AIUEOY]")


@functools.lru_cache(maxsize=1 << 16)
def phonetic(token: str) -> str:
    """A blocking code: the first letter of the spelling key and its consonants, at most 5.

    Coarser than :func:`spelling_key` (``MUHAMMAD`` and ``MUHAMAD`` agree, and so do
    ``SITTI`` and ``SITI``): two records that share it are worth scoring, nothing more.
    """
    key = spelling_key(token)
    if not key:
        return ""
    rest = _DOUBLED.sub(r"\1", _VOWELS.sub("", key[1:]).replace("H", ""))
    return (key[0] + rest)[:5]
