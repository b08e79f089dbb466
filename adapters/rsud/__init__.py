"""RSUD: hospital systems that send HL7 v2 (ADT, ORU, VXU), over MLLP or HTTP.

``hl7.py`` reads the bytes (hl7apy, with a real feed's tolerance), ``hl7map.py`` holds the
datatype maps, ``adapter.py`` what each message type becomes; the tables are data in
``mappings/rsud/`` (``mapping.py`` reads them).
"""

from adapters.rsud.adapter import RsudAdapter

adapter = RsudAdapter()

__all__ = ["RsudAdapter", "adapter"]
