"""RSUD (RSUD Kota Baubau): hospital systems that send HL7 v2 (ADT, ORU, VXU), over MLLP or
HTTP, and its SIMRS Khanza database.

``hl7.py`` reads the bytes (hl7apy, with a real feed's tolerance), ``hl7map.py`` holds the
datatype maps, ``adapter.py`` what each message type becomes; the tables are data in
``mappings/rsud/`` (``mapping.py`` reads them). ``khanza.py`` maps a visit read from Khanza to
FHIR; ``khanza_db.py`` reads the visits from the database for ``fhirhub pull khanza``.
"""

from adapters.rsud.adapter import RsudAdapter

adapter = RsudAdapter()

__all__ = ["RsudAdapter", "adapter"]
