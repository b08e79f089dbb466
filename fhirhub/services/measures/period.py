"""Dates as the indicators read them: local Baubau dates (WITA, UTC+8) of FHIR instants, the
report period, ages, and epidemiological (MMWR) weeks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache

from fhirhub.errors import FhirError, Issue, bad_request

WITA = timezone(timedelta(hours=8))
MAX_PERIOD_DAYS = 5 * 366  # a longer period is refused (too costly, and no indicator needs it)
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    def __contains__(self, d: object) -> bool:
        return isinstance(d, date) and self.start <= d <= self.end


def local_date(value: object) -> date | None:
    """The WITA calendar date of a FHIR date or dateTime (a dateTime without a zone is local
    time already); None for anything else."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    return _local_date(value)


# An encounter's resources share its instant and come one after another: a small cache of the
# last texts read saves most of the parsing (millions of rows in a large city).
@lru_cache(maxsize=4096)
def _local_date(value: str) -> date | None:
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        if value.endswith("+08:00") and value[10] == "T":  # already WITA (the common case)
            datetime.fromisoformat(value)  # valid, or ValueError
            return date.fromisoformat(value[:10])
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return dt.date()
    return dt.astimezone(WITA).date()


def local_moment(value: object) -> tuple[date, datetime] | None:
    """The WITA date of a FHIR date or dateTime (as :func:`local_date`; None where it gives
    None) and the moment, to order the day's events by: an aware datetime (compared as
    instants), :data:`DAY_START` for a date without a time. A dateTime without a zone is local
    time."""
    if not isinstance(value, str):
        return None
    if len(value) <= 10:
        day = local_date(value)
        return None if day is None else (day, DAY_START)
    # parsed every time: millions of instants, most of them distinct (a cache missed 98%)
    try:
        dt = _parse_instant(value)
    except ValueError:
        return None
    offset = dt.utcoffset()
    if offset is None:
        return dt.date(), dt.replace(tzinfo=WITA)
    if offset == _WITA_OFFSET:
        return dt.date(), dt
    return dt.astimezone(WITA).date(), dt


DAY_START = datetime(1, 1, 1, tzinfo=UTC)  # before every moment of a day
_WITA_OFFSET = timedelta(hours=8)
_parse_instant = datetime.fromisoformat  # takes "Z" for UTC (Python 3.11)


def parse_date(value: str, name: str, *, end: bool) -> date:
    """A FHIR date (YYYY, YYYY-MM or YYYY-MM-DD): its first day, or its last with ``end``."""
    m = _DATE.fullmatch(value.strip())
    if m is None:
        raise bad_request(f"{name} {value!r} is not a date (YYYY, YYYY-MM or YYYY-MM-DD)", name)
    year, month, day = int(m[1]), m[2], m[3]
    try:
        if day is not None:
            return date(year, int(month), int(day))
        if month is not None:
            first = date(year, int(month), 1)
            if not end:
                return first
            return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return date(year, 12, 31) if end else date(year, 1, 1)
    except ValueError:
        raise bad_request(f"{name} {value!r} is not a calendar date", name) from None


def parse_period(start: str | None, end: str | None) -> Period:
    if not start:
        raise bad_request(
            "periodStart is required (a date: YYYY, YYYY-MM or YYYY-MM-DD)",
            "periodStart",
            "required",
        )
    ps = parse_date(start, "periodStart", end=False)
    pe = (
        parse_date(end, "periodEnd", end=True)
        if end
        else parse_date(start, "periodStart", end=True)
    )
    if pe < ps:
        raise bad_request(
            f"periodEnd {pe.isoformat()} is before periodStart {ps.isoformat()}", "periodEnd"
        )
    if (pe - ps).days + 1 > MAX_PERIOD_DAYS:
        raise FhirError(
            400,
            [
                Issue(
                    "too-costly",
                    f"the period {ps.isoformat()}..{pe.isoformat()} is longer than "
                    f"{MAX_PERIOD_DAYS} days; evaluate a shorter one",
                    ("periodEnd",),
                )
            ],
        )
    return Period(ps, pe)


def today_wita() -> date:
    return datetime.now(WITA).date()


def age_years(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def age_months(birth: date, on: date) -> int:
    return (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)


def first_birthday(birth: date) -> date:
    try:
        return birth.replace(year=birth.year + 1)
    except ValueError:  # 29 February: 1 March
        return date(birth.year + 1, 3, 1)


def _week1_start(year: int) -> date:
    """The Sunday of MMWR week 1: the first Sunday-to-Saturday week with 4 days in ``year``."""
    jan4 = date(year, 1, 4)
    return jan4 - timedelta(days=(jan4.weekday() + 1) % 7)


@lru_cache(maxsize=8192)  # a few hundred days, asked for by a million encounters
def epi_week(d: date) -> tuple[int, int]:
    for year in (d.year + 1, d.year, d.year - 1):
        start = _week1_start(year)
        if d >= start:
            return year, (d - start).days // 7 + 1
    raise AssertionError(d)


def epi_weeks(period: Period) -> list[tuple[int, int]]:
    """The epi weeks touching the period, in order."""
    out: list[tuple[int, int]] = []
    d = period.start
    while d <= period.end:
        w = epi_week(d)
        if not out or out[-1] != w:
            out.append(w)
        d += timedelta(days=1)
    return out


def week_label(week: tuple[int, int]) -> str:
    return f"{week[0]}-W{week[1]:02d}"
