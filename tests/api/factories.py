"""Plain factory functions for test resources."""

from __future__ import annotations

from typing import Any

NIK = "https://fhir.kemkes.go.id/id/nik"


def patient(nik: str = "7472014501900001", family: str = "Wa Ode Sitti", **extra: Any) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NIK, "value": nik}],
        "name": [{"use": "official", "text": family, "family": family}],
        "gender": "female",
        "birthDate": "1990-01-05",
        **extra,
    }


def observation(subject: str, value: float = 120, **extra: Any) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2026-10-01T09:30:00+08:00",
        "valueQuantity": {
            "value": value,
            "unit": "mmHg",
            "system": "http://unitsofmeasure.org",
            "code": "mm[Hg]",
        },
        **extra,
    }
