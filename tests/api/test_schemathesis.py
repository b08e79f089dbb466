"""Requests generated from the server's own OpenAPI document (``/openapi.json``) never get a
5xx: schemathesis walks every operation it lists with path and query values of every shape
(NUL characters, huge numbers, non-ASCII digits...). Bounded to a few examples per operation
so that it runs with the suite in CI."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from fhirhub.api.app import create_app
from fhirhub.config import Settings

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)  # valid values, then invalid ones
EXAMPLES = 2  # per operation and mode: about 100 requests per database, well under a minute


def test_no_operation_answers_5xx(db_url: str) -> None:
    app = create_app(Settings(database_url=db_url, max_body_bytes=1_000_000), run_migrations=False)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 20  # every route family is in the document
        runs = [
            (op, mode)
            for op in operations
            for mode in MODES
            # FHIR routes take free text only (there is nothing invalid to make); the inbox and
            # ingest routes take typed ids, statuses and limits
            if mode is GenerationMode.POSITIVE
            or (not op.path.startswith("/fhir") and len(op.path_parameters) + len(op.query))
        ]
        for operation, mode in runs:
            strategy = operation.as_strategy(generation_mode=mode)

            @given(case=strategy)
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def no_5xx(case: Any) -> None:
                response = case.call()
                assert response.status_code < 500, (
                    case.method,
                    case.formatted_path,
                    case.query,
                    response.text[:300],
                )
                if response.status_code >= 400:
                    assert response.json()["resourceType"] == "OperationOutcome"

            no_5xx()
    finally:  # schemathesis keeps the app's lifespan running: stop its inbox sweeps here
        app.state.ingest.stop()
        app.state.database.engine.dispose()
