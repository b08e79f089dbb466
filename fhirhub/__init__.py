"""fhirhub: the FHIR R4 health information exchange of Dinas Kesehatan Kota Baubau."""

__version__ = "0.1.0"
FHIR_VERSION = "4.0.1"
