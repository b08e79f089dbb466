"""The NIK (Nomor Induk Kependudukan), taken apart and checked against a record.

16 digits, ``PP KK CC DDMMYY SSSS``: province, regency or city and district of first
registration (not the current domicile), the birth date with 40 added to the day for women, and
a sequence number from 0001. A NIK is never checked against a checksum: Dukcapil describes the
last four digits as a sequence number. Sources: the project's research notes
(``reference/mpi.md`` section 10.1: Dukcapil Klaten, Dirjen Dukcapil as quoted in the press,
UU 23/2006 as amended by UU 24/2013).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import date

from fhirhub.mpi.dates import close_dates

# Province codes of Kemendagri (Permendagri 72/2019 and the Papua provinces of 2022).
PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15", "16", "17", "18", "19", "21", "31", "32", "33", "34",
        "35", "36", "51", "52", "53", "61", "62", "63", "64", "65", "71", "72", "73", "74",
        "75", "76", "81", "82", "91", "92", "93", "94", "95", "96",
    }
)  # fmt: skip
_NIK = re.compile(r"\d{16}")


@dataclass(frozen=True)
class Nik:
    value: str
    province: str  # "74" Sulawesi Tenggara
    regency: str  # "7472" Kota Baubau
    district: str  # "747201"
    day: int  # 1-31, the 40 for women taken off
    month: int
    year2: int  # two digits: the century is not in the NIK
    sex: str  # "male" / "female"
    serial: int

    def birth_dates(self, today: date | None = None) -> list[date]:
        """The birth dates the NIK can mean: one per century that makes a valid date not
        after ``today``."""
        today = today or date.today()
        out = []
        for century in (1900, 2000):
            with contextlib.suppress(ValueError):
                born = date(century + self.year2, self.month, self.day)
                if born <= today:
                    out.append(born)
        return out


def parse_nik(value: str) -> Nik | None:
    """The parts of a NIK, or None when it cannot be one (wrong length, no such province,
    day, month or date, sequence 0000)."""
    if not _NIK.fullmatch(value) or value[:2] not in PROVINCES:
        return None
    day, month, year2, serial = (
        int(value[6:8]),
        int(value[8:10]),
        int(value[10:12]),
        int(value[12:]),
    )
    sex = "female" if day > 40 else "male"
    day = day - 40 if day > 40 else day
    if not (1 <= day <= 31 and 1 <= month <= 12) or serial == 0:
        return None
    nik = Nik(
        value=value,
        province=value[:2],
        regency=value[:4],
        district=value[:6],
        day=day,
        month=month,
        year2=year2,
        sex=sex,
        serial=serial,
    )
    # The date must exist in some century; whether it lies in the future is the record's matter.
    return nik if nik.birth_dates(date.max) else None


def conflicts(
    nik: Nik, birth_date: date | None, gender: str | None, today: date | None = None
) -> list[str]:
    """What in a record disagrees with its NIK: ``"birthDate"``, ``"gender"`` (empty: none).

    A conflict is a reason for review, not a rejection: a parent's NIK typed for a child, a KK
    number typed as a NIK, or a typo in either.
    """
    out = []
    if birth_date is not None and birth_date not in nik.birth_dates(today):
        out.append("birthDate")
    if gender in ("male", "female") and gender != nik.sex:
        out.append("gender")
    return out


def foreign(nik: Nik, birth_date: date | None, today: date | None = None) -> bool:
    """Whether a record's NIK is not its own: the record's birth date is further from every
    date the NIK can mean than a clerk's mistake goes (:func:`fhirhub.mpi.dates.close_dates`):
    a parent's NIK typed for a child, a family card number typed as a NIK. A typo in the NIK's
    or the record's date, or an unknown day written as 1 January, is not foreign."""
    if birth_date is None:
        return False
    return not any(close_dates(birth_date, d) for d in nik.birth_dates(today))
