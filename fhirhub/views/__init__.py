"""SQL on FHIR v2 views (https://sql-on-fhir.org/ig/latest/): ViewDefinitions and their FHIRPath.

``fhirpath`` parses the FHIRPath subset into an AST (``fhirpath_ast``) that ``fhirpath_eval``
evaluates over FHIR JSON and ``sql_compile`` translates to one SQL query over the store
(``sql_dialect``: PostgreSQL JSONB, SQLite JSON); ``definition`` validates a ViewDefinition into
typed nodes, ``run`` turns resources into rows in memory, ``sql_run`` over the store (compiled,
or in memory where the compiler refuses), ``output`` writes rows as JSON, NDJSON or CSV and
``materialize`` keeps a view as a table. Every problem with a view is a
:class:`~fhirhub.views.errors.ViewError` (ADR 0004).
"""
