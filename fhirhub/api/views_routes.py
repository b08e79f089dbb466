"""``$viewdefinition-run`` (SQL on FHIR v2): a ViewDefinition's rows as JSON, NDJSON or CSV.

``POST /fhir/ViewDefinition/$viewdefinition-run`` takes a Parameters body (``viewResource`` or
``viewReference``, ``resource``, ``patient``, ``_since``, ``_limit``, ``_format``);
``GET|POST /fhir/ViewDefinition/{id}/$viewdefinition-run`` runs a catalogued view
(``FHIRHUB_VIEWS_DIR``). The rows stream; the first batch is computed before the response
starts, so a bad view is a 400 OperationOutcome.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from fhirhub.api.bodies import read_body
from fhirhub.api.deidentify import is_analyst
from fhirhub.api.deps import DatabaseDep, SettingsDep
from fhirhub.api.inputs import refuse_nul
from fhirhub.auth import deidentify
from fhirhub.config import Settings
from fhirhub.errors import FhirError
from fhirhub.model.json import loads
from fhirhub.search.access import forbidden
from fhirhub.services import view_run

router = APIRouter(prefix="/fhir/ViewDefinition", dependencies=[Depends(refuse_nul)])
_JSON = {"application/fhir+json", "application/json", "application/json+fhir"}


async def _parameters(request: Request, settings: Settings) -> Any:
    raw = await read_body(request, settings.max_body_bytes, allow_empty=True)
    if not raw.strip():
        return None
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in _JSON:
        raise FhirError.single(415, "not-supported", "Send the Parameters as application/fhir+json")
    return loads(raw)


async def _run(
    request: Request, db: DatabaseDep, settings: Settings, body: Any, view_id: str | None
) -> Response:
    query = list(request.query_params.multi_items())
    stored: Callable[[str], Any] = partial(view_run.catalogue_view, settings.views_dir)
    if is_analyst(request):  # its rows carry no direct identifier: the view may not read one
        stored = _checked(stored)
        for param in body.get("parameter", []) if isinstance(body, dict) else []:
            if isinstance(param, dict) and param.get("name") == "viewResource":
                _refuse(param.get("resource"))
    run = view_run.parse_request(body, query, stored_view=stored, view_id=view_id)
    stream = await db.run(partial(view_run.start, run, db.engine))
    return StreamingResponse(iter(stream), media_type=stream.media_type)


def _refuse(view: Any) -> Any:
    refusal = deidentify.view_refusal(view)
    if refusal is not None:
        raise forbidden(refusal)
    return view


def _checked(stored: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda view_id: _refuse(stored(view_id))


@router.post("/$viewdefinition-run")
async def run_posted(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    return await _run(request, db, settings, await _parameters(request, settings), None)


@router.get("/{view_id}/$viewdefinition-run")
async def run_catalogued(
    request: Request, db: DatabaseDep, settings: SettingsDep, view_id: str
) -> Response:
    return await _run(request, db, settings, None, view_id)


@router.post("/{view_id}/$viewdefinition-run")
async def run_catalogued_post(
    request: Request, db: DatabaseDep, settings: SettingsDep, view_id: str
) -> Response:
    return await _run(request, db, settings, await _parameters(request, settings), view_id)
