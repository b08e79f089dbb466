"""Services: the FHIR interactions and operations, called by the API, CLI and jobs."""
