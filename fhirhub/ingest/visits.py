"""Ids derived from a visit's identifier, one rule for every source.

A facility's visit is known by its SATUSEHAT encounter identifier
(``http://sys-ids.kemkes.go.id/encounter/<organization id>`` | the facility's registration id).
Every channel that carries visits (a Puskesmas's Bundles, the RSUD's HL7 v2 feed with PV1-19,
its SIMRS Khanza database with ``no_rawat``) stores the Encounter under the name-based UUID (v5)
of that identifier, and the visit's Conditions, Observations, Procedures, ... under UUIDs of the
identifier, their type and their order in the visit: a visit that arrives twice, or by two
channels, is stored once (PUT), and a corrected one becomes a new version of the same resources.
"""

from __future__ import annotations

import uuid

ENCOUNTER_SYSTEM = "http://sys-ids.kemkes.go.id/encounter/"  # + SATUSEHAT organization id
_IDS = uuid.UUID("6a1b7c52-3f0e-4c1f-9d6e-2b8f0c5e7a11")  # the namespace of derived ids


def encounter_system(organization_id: str) -> str:
    """The visit identifier system of a facility, from its SATUSEHAT organization id."""
    return ENCOUNTER_SYSTEM + organization_id


def visit_key(system: str, value: str) -> str:
    return f"{system}|{value}"


def encounter_id(system: str, value: str) -> str:
    """The id of the Encounter whose visit identifier is ``system|value``."""
    return str(uuid.uuid5(_IDS, f"{visit_key(system, value)}|Encounter"))


def child_id(system: str, value: str, resource_type: str, n: int) -> str:
    """The id of the ``n``-th (from 0) resource of ``resource_type`` of that visit."""
    return str(uuid.uuid5(_IDS, f"{visit_key(system, value)}|{resource_type}|{n}"))
