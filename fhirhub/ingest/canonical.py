"""Canonical values: the one form fhirhub stores, whatever a source sent (docs/canonical.md).

Each normaliser is a pure function of one value and returns None when the value cannot be put
in canonical form; callers then keep what was sent rather than lose it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from fhirhub.model.systems import (  # noqa: F401  (the canonical module names them too)
    ADMINISTRATIVE_CODE,
    BPJS_CARD,
    ICD10,
    IHS_NUMBER,
    LOINC,
    MRN_BASE,
    NIK,
    NIK_IBU,
)

WITA = timezone(timedelta(hours=8), "WITA")


def mrn_system(facility_code: str) -> str:
    """The medical-record-number system of a facility (``PKM05`` -> ``.../sid/mrn/pkm05``)."""
    return MRN_BASE + facility_code.lower()


# --- identifiers -----------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s.\-/]")


def nik(value: str) -> str | None:
    """A NIK is 16 digits; separators that clerks type are dropped."""
    digits = _SEPARATORS.sub("", value)
    return digits if re.fullmatch(r"\d{16}", digits) else None


def bpjs_card(value: str) -> str | None:
    """A BPJS card number is 13 digits; spreadsheets drop the leading zeros, we put them back."""
    digits = _SEPARATORS.sub("", value)
    if not digits.isdigit() or not 1 <= len(digits) <= 13:
        return None
    return digits.zfill(13)


def ihs_number(value: str) -> str | None:
    """A SATUSEHAT patient id: ``P`` and 11 digits."""
    v = value.strip().upper()
    return v if re.fullmatch(r"P\d{11}", v) else None


# --- administrative gender -------------------------------------------------------------------

_GENDERS = {
    "l": "male",
    "lk": "male",
    "laki-laki": "male",
    "laki laki": "male",
    "lakilaki": "male",
    "pria": "male",
    "m": "male",
    "p": "female",
    "pr": "female",
    "perempuan": "female",
    "wanita": "female",
    "f": "female",
    "male": "male",
    "female": "female",
    "other": "other",
    "unknown": "unknown",
}


def gender(value: str) -> str | None:
    """FHIR's administrative gender from how Indonesian systems write it (``L``/``P``,
    Laki-laki/Perempuan, Pria/Wanita, any case)."""
    return _GENDERS.get(" ".join(value.strip().lower().split()))


# --- phones ----------------------------------------------------------------------------------

_PHONE_NOISE = re.compile(r"[\s\-().]")


def phone_e164(value: str) -> str | None:
    """An Indonesian phone number in E.164 (``+62…``).

    Accepts the forms clinics write: ``0812…``, ``62812…``, ``+62812…``, ``0812-xxxx-xxxx``,
    ``+62 812-…``, and ``812…`` without the trunk zero. National numbers (after +62) have 8
    to 12 digits. A number dialled with an international prefix (``00…``) is not a form of an
    Indonesian number and is not made one.
    """
    v = _PHONE_NOISE.sub("", value.strip())
    if v.startswith("00"):
        return None
    if v.startswith("+"):
        digits = v[1:]
        if not digits.startswith("62"):
            return None
        national = digits[2:]
    elif v.startswith("62"):
        national = v[2:]
    elif v.startswith("0"):
        national = v[1:]
    elif v.startswith("8"):
        national = v
    else:
        return None
    national = national.lstrip("0") if national.startswith("0") else national
    if not national.isdigit() or not 8 <= len(national) <= 12:
        return None
    return "+62" + national


# --- ICD-10 ----------------------------------------------------------------------------------

_ICD10 = re.compile(r"^([A-Z])(\d\d)(?:\.?([0-9A-Z]{1,2}))?$")


def icd10(value: str, terminal: frozenset[str] = frozenset()) -> str | None:
    """A cleaned ICD-10 code: upper case, the dot after the category, no trailing dot.

    ``i10`` -> ``I10``, ``I10.`` -> ``I10``, ``a099`` -> ``A09.9``. A subdivision of a category
    that has none (``terminal``, e.g. ``I10.0``) is dropped: ``I10.0`` -> ``I10``.
    """
    v = re.sub(r"\s", "", value).upper().rstrip(".")
    m = _ICD10.match(v)
    if not m:
        return None
    category = m.group(1) + m.group(2)
    sub = m.group(3)
    if not sub or category in terminal:
        return category
    return f"{category}.{sub}"


# --- times -----------------------------------------------------------------------------------

_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def wita(value: str) -> str | None:
    """A dateTime with an offset, rewritten at +08:00 (the same instant, Baubau's clock).

    Fractions of a second are kept as sent; values without a time or offset are left alone.
    """
    m = _DATETIME.match(value)
    if not m:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    local = moment.astimezone(WITA)
    fraction = m.group(1) or ""
    return local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "+08:00"


def times_to_wita(node: Any) -> Any:
    """Every dateTime/instant string in a resource, at +08:00 (in place; returns ``node``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                fixed = wita(value) if "T" in value else None
                if fixed is not None:
                    node[key] = fixed
            else:
                times_to_wita(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, str):
                fixed = wita(value) if "T" in value else None
                if fixed is not None:
                    node[i] = fixed
            else:
                times_to_wita(value)
    return node
