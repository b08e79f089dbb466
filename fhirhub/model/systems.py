"""The identifier systems and extension URLs of fhirhub's canonical form (docs/canonical.md).

Defined here, at the bottom of the layers, so that the ingest pipeline that writes the canonical
form and the patient index that reads it name the same URLs.
"""

NIK = "https://fhir.kemkes.go.id/id/nik"
NIK_IBU = "https://fhir.kemkes.go.id/id/nik-ibu"
IHS_NUMBER = "https://fhir.kemkes.go.id/id/ihs-number"
BPJS_CARD = "https://fhir.bpjs-kesehatan.go.id/id/no-kartu"
MRN_BASE = "https://fhirhub.baubaukota.go.id/sid/mrn/"  # + facility code in lower case
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
ADMINISTRATIVE_CODE = "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode"
