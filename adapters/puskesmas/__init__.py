"""Puskesmas: clinic systems that send SATUSEHAT-shaped FHIR R4 transaction Bundles.

Each Puskesmas has a mapping table in ``mappings/puskesmas/<code>.yaml`` (its record-number
system and style, its local code lists and their ConceptMaps). See ``mapping.py`` for the table
and ``adapter.py`` for what a Bundle becomes.
"""

from adapters.puskesmas.adapter import PuskesmasAdapter

adapter = PuskesmasAdapter()

__all__ = ["PuskesmasAdapter", "adapter"]
