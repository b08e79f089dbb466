"""How close two birth dates are: the clerk's mistakes with dates, as levels.

Kept apart from :mod:`fhirhub.mpi.compare` because :mod:`fhirhub.mpi.features` also needs it,
to tell a NIK mistyped in its date from a relative's NIK (whose date is far from the record's).
"""

from __future__ import annotations

from datetime import date

MISSING = -1
# exact / one of day or month off, day and month swapped, or a one-digit year typo / year one
# off / the same year where one date is 1 January or 1 July (what is written for someone, often
# elderly, who does not know the day) / else.
DATE_LEVELS = ("exact", "one_field", "year_1", "placeholder", "else")
CLOSE = 3  # levels up to this one are a mistake in a date, not another date


def compare_dates(a: date | None, b: date | None) -> int:
    """The level of two birth dates in :data:`DATE_LEVELS` (:data:`MISSING` when one is)."""
    if a is None or b is None:
        return MISSING
    if a == b:
        return 0
    same = (a.year == b.year, a.month == b.month, a.day == b.day)
    if (a.year, a.month, a.day) == (b.year, b.day, b.month) or same in (
        (True, True, False),
        (True, False, True),
    ):
        return 1
    if same == (False, True, True):
        if abs(a.year - b.year) == 1:
            return 2
        if one_digit_apart(f"{a.year:04d}", f"{b.year:04d}"):
            return 1
    if a.year == b.year and (_placeholder(a) or _placeholder(b)):
        return 3
    return 4


def close_dates(a: date | None, b: date | None) -> bool:
    """Both known and at most a mistake apart (level :data:`CLOSE` or better)."""
    return 0 <= compare_dates(a, b) <= CLOSE


def one_digit_apart(a: str, b: str) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def _placeholder(d: date) -> bool:
    return (d.month, d.day) in ((1, 1), (7, 1))
