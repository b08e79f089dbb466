"""The RSUD (RSUD Kota Baubau): its SIMRS Khanza database (``khanza*.py``).

``khanza.py`` maps a visit read from Khanza to FHIR; ``khanza_db.py`` reads the visits from the
database for ``fhirhub pull khanza``.
"""
