"""``lowBoundary()`` and ``highBoundary()``: the least and greatest value an imprecise one may be.

https://build.fhir.org/ig/HL7/FHIRPath/#lowboundaryprecision-integer-decimal--date--datetime--time
(used by SQL on FHIR for period overlap). A date ``1970-06`` spans ``1970-06-01`` to
``1970-06-30``; a dateTime without a zone spans +14:00 to -12:00; ``1.0`` spans 0.95 to 1.05.
"""

from __future__ import annotations

import calendar
import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from fhirhub.views.fhirpath_types import Item, is_number, temporal_kind, to_decimal

_DATETIME = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?"
    r"(?:T(?P<time>[^Z+-]*)(?P<tz>Z|[+-]\d{2}:\d{2})?)?"
)
_TIME = re.compile(
    r"(?P<hour>\d{2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<frac>\d+))?)?)?"
)


def boundary(item: Item, high: bool, precision: int | None = None) -> Item | None:
    """The boundary of ``item``, or None when the item has no boundary (a string, a code)."""
    if is_number(item.value):
        return Item(_decimal_boundary(to_decimal(item.value), high, precision), "decimal")
    if not isinstance(item.value, str):
        return None
    kind = temporal_kind(item)
    if kind is None and item.type == "time":
        kind = "time"
    if kind == "time":
        text = _time_boundary(item.value, high)
        return Item(text, "time") if text is not None else None
    if kind == "date" and "T" not in item.value:
        text = _date_boundary(item.value, high)
        return Item(text, "date") if text is not None else None
    if kind in ("dateTime", "instant", "date"):
        text = _datetime_boundary(item.value, high)
        return Item(text, "dateTime") if text is not None else None
    return None


def _decimal_boundary(value: Decimal, high: bool, precision: int | None) -> Decimal:
    exponent = value.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    half = Decimal(5).scaleb(-(places + 1))
    result = value + half if high else value - half
    if precision is not None and 0 <= precision <= 28:
        result = result.quantize(
            Decimal(1).scaleb(-precision), ROUND_CEILING if high else ROUND_FLOOR
        )
    return result


def _date_parts(match: re.Match[str], high: bool) -> tuple[str, str, str]:
    year = match["year"]
    month = match["month"] or ("12" if high else "01")
    day = match["day"]
    if day is None:
        day = str(calendar.monthrange(int(year), int(month))[1]) if high else "01"
    return year, month, day


def _date_boundary(text: str, high: bool) -> str | None:
    match = _DATETIME.fullmatch(text)
    if match is None or match["time"] is not None:
        return None
    year, month, day = _date_parts(match, high)
    return f"{year}-{month}-{day}"


def _clock(text: str, high: bool) -> str | None:
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    hour = match["hour"]
    minute = match["minute"] or ("59" if high else "00")
    second = match["second"] or ("59" if high else "00")
    frac = (match["frac"] or "")[:3].ljust(3, "9" if high else "0")
    return f"{hour}:{minute}:{second}.{frac}"


def _time_boundary(text: str, high: bool) -> str | None:
    return _clock(text, high)


def _datetime_boundary(text: str, high: bool) -> str | None:
    match = _DATETIME.fullmatch(text)
    if match is None:
        return None
    year, month, day = _date_parts(match, high)
    clock = (
        _clock(match["time"], high)
        if match["time"]
        else ("23:59:59.999" if high else "00:00:00.000")
    )
    if clock is None:
        return None
    zone = match["tz"] or ("-12:00" if high else "+14:00")
    return f"{year}-{month}-{day}T{clock}{zone}"
