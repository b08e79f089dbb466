"""Search values: normalisation shared by indexing and querying; splitting of query values.

Dates: https://hl7.org/fhir/R4/search.html#date . A date or dateTime stands for the range of
time its precision covers; we keep both ends, inclusive, as integer microseconds since the Unix
epoch (UTC). A value without a time zone is read in Baubau's zone, WITA (UTC+08:00): the spec
leaves it to the server ("server-local"), and this server serves one city.
"""

from __future__ import annotations

import calendar
import re
import unicodedata

LOCAL_OFFSET_S = 8 * 3600  # WITA, UTC+08:00
MIN_US = -(2**62)
MAX_US = 2**62

_DATE_RE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?)?)?)?$"
)


def normalise(text: str) -> str:
    """Lower case with accents removed, as the default string match requires."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def date_range(value: str) -> tuple[int, int] | None:
    """The inclusive (low, high) µs range a FHIR date/dateTime/instant covers, or None."""
    m = _DATE_RE.match(value.strip())
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    year = int(y)
    try:
        if mo is None:
            return _span(year, 1, 1, 0, 0, 0, 0, None, "Y")
        month = int(mo)
        if d is None:
            return _span(year, month, 1, 0, 0, 0, 0, None, "M")
        day = int(d)
        if hh is None:
            return _span(year, month, day, 0, 0, 0, 0, None, "D")
        hour = int(hh)
        minute = int(mi) if mi is not None else 0
        if ss is None:
            return _span(year, month, day, hour, minute, 0, 0, tz, "m")
        sec = int(ss)
        if frac is None:
            return _span(year, month, day, hour, minute, sec, 0, tz, "s")
        digits = frac[:6]
        us = int(digits.ljust(6, "0"))
        width = 10 ** (6 - len(digits))
        low, _ = _span(year, month, day, hour, minute, sec, us, tz, "us")
        return low, low + width - 1
    except ValueError:
        return None


def _span(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    sec: int,
    us: int,
    tz: str | None,
    unit: str,
) -> tuple[int, int]:
    if not (1 <= month <= 12) or hour > 24 or minute > 59 or sec > 60:
        raise ValueError("out of range")
    mdays = calendar.monthrange(year, month)[1]
    if not 1 <= day <= mdays:
        raise ValueError("out of range")
    offset = LOCAL_OFFSET_S if tz is None else _tz_seconds(tz)
    days = _days_from_civil(year, month, day)
    low = ((days * 86400 + hour * 3600 + minute * 60 + sec - offset) * 1_000_000) + us
    if unit == "Y":
        days_in = 366 if calendar.isleap(year) else 365
        return low, low + days_in * 86_400_000_000 - 1
    if unit == "M":
        return low, low + mdays * 86_400_000_000 - 1
    if unit == "D":
        return low, low + 86_400_000_000 - 1
    if unit == "m":
        return low, low + 60_000_000 - 1
    if unit == "s":
        return low, low + 1_000_000 - 1
    return low, low


def _tz_seconds(tz: str) -> int:
    if tz == "Z":
        return 0
    sign = -1 if tz[0] == "-" else 1
    body = tz[1:].replace(":", "")
    return sign * (int(body[:2]) * 3600 + int(body[2:]) * 60)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_REF_RE = re.compile(
    r"^(?:(?P<base>.*)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[^/]+)?$"
)


def parse_reference(ref: str) -> tuple[str | None, str | None, str | None]:
    """(target type, target id, absolute url or None) of a reference string."""
    m = _REF_RE.match(ref)
    absolute = ref if ("://" in ref or ref.startswith("urn:")) else None
    if m:
        return m.group("type"), m.group("id"), absolute
    return None, None, absolute or ref


def precision_range(text: str) -> tuple[float, float]:
    """The implicit range of a decimal as written: "5.4" stands for [5.35, 5.45)."""
    value = float(text)
    t = text.strip().lower()
    if "e" in t:
        mant, _, exp = t.partition("e")
        exp = exp.lstrip("+")
        # An exponent of thousands of digits is far past any double either way.
        scale = int(exp) if len(exp.lstrip("-")) <= 6 else (-(10**6) if "-" in exp else 10**6)
        decimals = len(mant.partition(".")[2]) - scale
    else:
        decimals = len(t.partition(".")[2])
    # 10.0 ** 400 overflows; past +-300 the half-width is 0 or beyond any stored value anyway.
    half = 0.5 * 10.0 ** -max(-300, min(decimals, 400))
    return value - half, value + half


def split_values(value: str) -> list[str]:
    """Comma-separated alternatives; ``\\,`` is a literal comma."""
    if "\\" not in value:
        return value.split(",")
    out, cur, i = [], "", 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in ",$|\\":
            cur += value[i + 1]
            i += 2
            continue
        if ch == ",":
            out.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    out.append(cur)
    return out


_SEPARATORS = {sep: re.compile(r"(?<!\\)" + re.escape(sep)) for sep in "|$"}


def split_unescaped(value: str, sep: str) -> list[str]:
    """The parts of ``value`` between unescaped ``sep`` (``|`` or ``$``); ``\\|`` is a literal."""
    if "\\" not in value:
        return value.split(sep)
    parts = _SEPARATORS[sep].split(value)
    return [p.replace("\\" + sep, sep) for p in parts]
