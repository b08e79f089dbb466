"""Writers of the non-FHIR sources (filled in by sources_* modules)."""

from __future__ import annotations

TASKS: dict = {}
