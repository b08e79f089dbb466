"""Helpers for the patient index tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from fhirhub.mpi.features import Features
from fhirhub.mpi.names import parse_name
from fhirhub.mpi.nik import parse_nik


def rec(name: str = "Siti Aminah", **over: object) -> Features:
    base = Features(
        id=None,
        name=parse_name(name),
        birth_date=date(1990, 8, 5),
        gender="female",
        nik=parse_nik("7472014508900001"),
        nik_ibu=None,
        bpjs=None,
        ihs=None,
        phones=frozenset({"81234567890"}),
        kelurahan="7472011001",
        rt="3",
        rw="1",
    )
    return replace(base, **over)
