"""FHIR model helpers: JSON, resource types and validation. Knows nothing of storage or HTTP."""
