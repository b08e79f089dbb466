"""SQL on FHIR v2 views (https://sql-on-fhir.org/ig/latest/): ViewDefinitions and their FHIRPath.

Built in steps (issue 12). Here: ``fhirpath`` parses the FHIRPath subset into an AST
(``fhirpath_ast``) that ``fhirpath_eval`` evaluates over FHIR JSON and that a later SQL compiler
walks; ``definition`` validates a ViewDefinition into typed nodes and ``run`` turns resources
into rows in memory. Every problem with a view is a :class:`~fhirhub.views.errors.ViewError`.
"""
