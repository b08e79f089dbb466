"""The resource types of FHIR R4 4.0.1 (from the committed table built by
``scripts/build_model_tables.py``)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

_DATA = Path(__file__).resolve().parent / "data" / "r4_resource_types.json"
ID_PATTERN = re.compile(r"[A-Za-z0-9\-\.]{1,64}")


@cache
def resource_types() -> frozenset[str]:
    return frozenset(json.loads(_DATA.read_text())["resourceTypes"])


def is_resource_type(name: str) -> bool:
    return name in resource_types()


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None
