"""What a Patient says about who it is, in the form the matcher compares, and its blocking keys.

:func:`extract` reads a FHIR R4 Patient (a dict, as stored: canonical identifiers, phones and
the kelurahan code of ``docs/canonical.md``) into a :class:`Features` record; it tolerates what
the canonical pass leaves as sent (a phone in a local format, a NIK with separators, no address
code). :func:`blocking_keys` gives the keys under which a record looks for candidates: a key
whose value is missing is skipped, never widened to "everyone".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from fhirhub.model.systems import ADMINISTRATIVE_CODE, BPJS_CARD, IHS_NUMBER, MRN_BASE, NIK, NIK_IBU
from fhirhub.mpi.names import ParsedName, fold, parse_name, phonetic
from fhirhub.mpi.nik import Nik, conflicts, foreign, parse_nik

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # characters no FHIR string holds

_NOT_DIGITS = re.compile(r"\D")
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")
_KNOWN = frozenset({NIK, NIK_IBU, BPJS_CARD, IHS_NUMBER})
_DATE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)")


@dataclass(frozen=True)
class Features:
    """One Patient as the matcher sees it. Missing values are None or empty, never guessed."""

    id: str | None
    name: ParsedName | None
    birth_date: date | None
    gender: str | None  # "male" / "female"; other codes are no evidence
    nik: Nik | None  # a NIK that parses
    nik_ibu: str | None
    bpjs: str | None
    ihs: str | None
    mrns: tuple[tuple[str, str], ...] = ()  # (facility, record number), sorted
    phones: frozenset[str] = frozenset()  # national numbers, no trunk zero: "81234567890"
    kelurahan: str | None = None  # 10-digit Kemendagri village code
    rt: str | None = None
    rw: str | None = None
    multiple_birth: int | None = None  # multipleBirthInteger: 0 single, 1, 2, ... twins
    nik_conflicts: tuple[str, ...] = ()  # what in the record disagrees with its own NIK
    nik_foreign: bool = False  # its birth date is far from the record's: a relative's NIK
    # Generic evidence, for records from anywhere (and for Indonesian ones without codes):
    postcode: str | None = None  # address.postalCode, letters and digits only, upper case
    locality: str | None = None  # address.city (suburb, town), folded
    street: str | None = None  # address.line, folded and joined
    # Identifiers of any other system (a national id, a passport, ...): (system, value), sorted
    other_ids: tuple[tuple[str, str], ...] = ()

    @property
    def newborn_placeholder(self) -> bool:
        """A "By. Ny. <mother>" record, or a record known only by its mother's NIK."""
        named = self.name is not None and self.name.newborn
        return named or (self.nik is None and self.nik_ibu is not None)


def extract(patient: Mapping[str, Any], today: date | None = None) -> Features:
    """The :class:`Features` of a FHIR Patient (see the module's docstring)."""
    ids = _identifiers(patient)
    nik_value = _digits(ids.get(NIK, [None])[0])
    nik = parse_nik(nik_value) if nik_value else None
    nik_ibu = _digits(ids.get(NIK_IBU, [None])[0])
    bpjs = _digits(ids.get(BPJS_CARD, [None])[0])
    ihs = ids.get(IHS_NUMBER, [None])[0]
    mrns = sorted(
        (system[len(MRN_BASE) :], value)
        for system, values in ids.items()
        if system.startswith(MRN_BASE)
        for value in values
    )
    others = sorted(
        {
            (system, v)
            for system, values in ids.items()
            if system not in _KNOWN and not system.startswith(MRN_BASE)
            for value in values
            if (v := _id_value(value))
        }
    )
    birth_date = _date(patient.get("birthDate"))
    gender = patient.get("gender") if patient.get("gender") in ("male", "female") else None
    addresses = patient.get("address") or []
    kelurahan, rt, rw = _address(addresses)
    postcode, locality, street = _postal(addresses)
    multiple = patient.get("multipleBirthInteger")
    if multiple is None and patient.get("multipleBirthBoolean") is False:
        multiple = 0
    return Features(
        id=patient.get("id"),
        name=_name(patient.get("name") or []),
        birth_date=birth_date,
        gender=gender,
        nik=nik,
        nik_ibu=nik_ibu if nik_ibu and len(nik_ibu) == 16 else None,
        bpjs=bpjs.zfill(13) if bpjs and len(bpjs) <= 13 else None,
        ihs=ihs.strip().upper() if ihs and ihs.strip() else None,
        mrns=tuple(mrns),
        phones=frozenset(_phones(patient.get("telecom") or [])),
        kelurahan=kelurahan,
        rt=rt,
        rw=rw,
        multiple_birth=multiple if isinstance(multiple, int) else None,
        nik_conflicts=tuple(conflicts(nik, birth_date, gender, today)) if nik else (),
        nik_foreign=nik is not None and foreign(nik, birth_date, today),
        postcode=postcode,
        locality=locality,
        street=street,
        other_ids=tuple(others),
    )


# The stored form of Features (the patient index keeps each record's beside its Person, so
# that a candidate met in a block is compared without its body read and parsed again). Raise
# FEATURES_FORMAT whenever what extract() returns changes: a stored form of another format is
# not read (the record's body is, and the rebuild or its next write stores the new form);
# tests/mpi/test_features_stored.py fails until it is raised.
FEATURES_FORMAT = 1


def encode(f: Features) -> str:
    """``f`` as compact JSON text (:func:`decode` reads it back equal)."""
    n, nik = f.name, f.nik
    return orjson.dumps(
        [
            FEATURES_FORMAT,
            f.id,
            None
            if n is None
            else [
                n.tokens,
                n.prefix,
                sorted(n.honorifics),
                sorted(n.degrees),
                n.father,
                n.newborn,
                n.sex_hint,
            ],
            f.birth_date.isoformat() if f.birth_date is not None else None,
            f.gender,
            None
            if nik is None
            else [
                nik.value,
                nik.province,
                nik.regency,
                nik.district,
                nik.day,
                nik.month,
                nik.year2,
                nik.sex,
                nik.serial,
            ],
            f.nik_ibu,
            f.bpjs,
            f.ihs,
            f.mrns,
            sorted(f.phones),
            f.kelurahan,
            f.rt,
            f.rw,
            f.multiple_birth,
            f.nik_conflicts,
            f.nik_foreign,
            f.postcode,
            f.locality,
            f.street,
            f.other_ids,
        ]
    ).decode()


def decode(text: str) -> Features | None:
    """The Features :func:`encode` wrote, or None when they were written in another format."""
    v = orjson.loads(text)
    if v[0] != FEATURES_FORMAT:
        return None
    n, nik = v[2], v[5]
    return Features(
        id=v[1],
        name=None
        if n is None
        else ParsedName(
            tokens=tuple(n[0]),
            prefix=n[1],
            honorifics=frozenset(n[2]),
            degrees=frozenset(n[3]),
            father=tuple(n[4]),
            newborn=n[5],
            sex_hint=n[6],
        ),
        birth_date=date.fromisoformat(v[3]) if v[3] is not None else None,
        gender=v[4],
        nik=None if nik is None else Nik(*nik),
        nik_ibu=v[6],
        bpjs=v[7],
        ihs=v[8],
        mrns=tuple((a, b) for a, b in v[9]),
        phones=frozenset(v[10]),
        kelurahan=v[11],
        rt=v[12],
        rw=v[13],
        multiple_birth=v[14],
        nik_conflicts=tuple(v[15]),
        nik_foreign=v[16],
        postcode=v[17],
        locality=v[18],
        street=v[19],
        other_ids=tuple((a, b) for a, b in v[20]),
    )


def blocking_keys(f: Features) -> set[str]:
    """The keys under which a record meets its candidates (each one served by an index later).

    NIK, BPJS and IHS numbers; each phonetic name token with the birth date; birth date with
    kelurahan; each phone; the mother's NIK with the birth date for a newborn. A key whose value
    is missing is left out: a record without a birth date is not blocked with "everyone".
    """
    keys: set[str] = set()
    if f.nik is not None:
        keys.add(f"nik:{f.nik.value}")
    if f.bpjs:
        keys.add(f"bpjs:{f.bpjs}")
    if f.ihs:
        keys.add(f"ihs:{f.ihs}")
    for phone in f.phones:
        keys.add(f"phone:{phone}")
    for facility, mrn in f.mrns:
        keys.add(f"mrn:{facility}|{mrn}")
    for system, value in f.other_ids:
        keys.add(f"id:{system}|{value}")
        if 6 <= len(value) <= 12:
            # The value and the value with one character dropped at each place: two values a
            # character dropped, added or changed apart share a key.
            keys.add(f"id-del:{system}|{value}")
            keys.update(f"id-del:{system}|{value[:k]}{value[k + 1 :]}" for k in range(len(value)))
    codes = [c for c in map(phonetic, f.name.tokens) if c] if f.name is not None else []
    if f.birth_date is not None:
        born = f.birth_date.isoformat()
        for code in codes:
            keys.add(f"name-dob:{code}:{born}")
        if f.kelurahan:
            keys.add(f"dob-kel:{born}:{f.kelurahan}")
            # "Born 1959", written 1959-01-01 by one clerk and 1959-03-25 by another.
            for code in codes:
                keys.add(f"name-year-kel:{code}:{f.birth_date.year}:{f.kelurahan}")
        if f.postcode:
            keys.add(f"dob-pc:{born}:{f.postcode}")
        if f.nik_ibu:
            keys.add(f"nikibu-dob:{f.nik_ibu}:{born}")
    if f.street:
        # A household's own key where no village code was sent: its street address.
        if f.birth_date is not None:
            keys.add(f"dob-street:{f.birth_date.isoformat()}:{f.street}")
            keys.add(f"year-street:{f.birth_date.year}:{f.street}")  # a name and a day typo'd
        for code in codes:
            keys.add(f"name-street:{code}:{f.street}")
    if f.postcode:
        # A birth date mistyped or missing: the name within a postcode (records with postcodes).
        for code in codes:
            keys.add(f"name-pc:{code}:{f.postcode}")
    # A value with a control character (no FHIR string holds one) is no evidence; keys never
    # hold one, so that a list of them travels as one separated text (mpi.store.texts).
    if _CONTROL.search("".join(keys)) is None:  # one search for all of them, nearly always
        return keys
    return {k for k in keys if _CONTROL.search(k) is None}


def nik_neighbourhood(nik: str) -> set[str]:
    """Keys any two NIKs one typo apart share (one digit changed or two adjacent swapped:
    ``compare.compare_nik``'s level 1), and NIKs further apart almost never: the NIK with each
    window of four digits, at steps of two, masked. A changed digit or a swapped pair lies
    within one window. Only locked (``store.gather``'s ``guards``), never stored."""
    width = min(4, len(nik))
    starts = set(range(0, len(nik) - width + 1, 2)) | {len(nik) - width}
    return {f"nik~:{nik[:i]}{'_' * width}{nik[i + width :]}" for i in starts}


def _identifiers(patient: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ident in patient.get("identifier") or []:
        system, value = ident.get("system"), ident.get("value")
        if isinstance(system, str) and isinstance(value, str) and value.strip():
            out.setdefault(system, []).append(value.strip())
    return out


def _digits(value: str | None) -> str | None:
    if value is None:
        return None
    digits = _NOT_DIGITS.sub("", value)
    return digits or None


def _date(value: Any) -> date | None:
    # A partial date (YYYY or YYYY-MM) is no birth date for matching.
    match = _DATE.match(value) if isinstance(value, str) else None
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _name(names: list[dict[str, Any]]) -> ParsedName | None:
    order = {"official": 0, "usual": 1, None: 2}
    for name in sorted(names, key=lambda n: order.get(n.get("use"), 3)):
        text = name.get("text")
        if not text:
            parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
            text = " ".join(p for p in parts if p)
            if name.get("suffix"):
                text += ", " + ", ".join(name["suffix"])
        parsed = parse_name(text) if text else None
        if parsed is not None and (parsed.tokens or parsed.newborn):
            return parsed
    return None


def national_phone(value: str) -> str | None:
    """A phone as its national number without trunk zero (``+62 812-…``, ``0812…`` -> ``812…``),
    or None when it has no 8-12 digit national number."""
    digits = _NOT_DIGITS.sub("", value)
    if digits.startswith("62"):
        digits = digits[2:]
    digits = digits.lstrip("0")
    return digits if 8 <= len(digits) <= 12 else None


def _phones(telecom: list[dict[str, Any]]) -> list[str]:
    out = []
    for t in telecom:
        if t.get("system") in ("phone", "sms") and isinstance(t.get("value"), str):
            phone = national_phone(t["value"])
            if phone:
                out.append(phone)
    return out


def _address(addresses: list[dict[str, Any]]) -> tuple[str | None, str | None, str | None]:
    # The home address first; the first that carries a village code wins.
    ranked = sorted(addresses, key=lambda a: 0 if a.get("use") == "home" else 1)
    for address in ranked:
        for ext in address.get("extension") or []:
            if ext.get("url") != ADMINISTRATIVE_CODE:
                continue
            parts = {
                e.get("url"): e.get("valueCode")
                for e in ext.get("extension") or []
                if isinstance(e.get("valueCode"), str)
            }
            village = parts.get("village")
            if village and len(_NOT_DIGITS.sub("", village)) == 10:
                village = _NOT_DIGITS.sub("", village)
                return village, _norm_rt(parts.get("rt")), _norm_rt(parts.get("rw"))
    return None, None, None


def _norm_rt(value: str | None) -> str | None:
    digits = _digits(value)
    return str(int(digits)) if digits and int(digits) > 0 else None


def _id_value(value: str) -> str | None:
    # "123-456 789" and "123456789" are one number; letters are kept (passports).
    v = _NOT_ALNUM.sub("", value.upper())
    return v or None


def address_text(text: str) -> str:
    """Upper-case ASCII words and numbers of an address line, single-spaced (house numbers
    are kept, unlike in a name): ``"Jl. Betoambari No. 91"`` -> ``"JL BETOAMBARI NO 91"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii").upper()
    return " ".join(_NOT_ALNUM.sub(" ", ascii_only).split())


def _postal(addresses: list[dict[str, Any]]) -> tuple[str | None, str | None, str | None]:
    """(postcode, locality, street) of the home address (else the first with any of them)."""
    ranked = sorted(addresses, key=lambda a: 0 if a.get("use") == "home" else 1)
    for address in ranked:
        code = address.get("postalCode")
        postcode = _NOT_ALNUM.sub("", code.upper()) if isinstance(code, str) else ""
        city = address.get("city")
        locality = fold(city).replace(",", "") if isinstance(city, str) else ""
        lines = [x for x in address.get("line") or [] if isinstance(x, str)]
        street = address_text(" ".join(lines))
        if postcode or locality or street:
            return postcode or None, locality or None, street or None
    return None, None, None
