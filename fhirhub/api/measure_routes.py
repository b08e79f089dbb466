"""Population-health indicators: ``$evaluate-measure`` on the Measures of the catalogue.

http://hl7.org/fhir/R4/measure-operation-evaluate-measure.html — ``GET`` with the parameters in
the query, or ``POST`` with a ``Parameters`` resource (query parameters may come beside it).
Registered before the generic FHIR routes, whose ``/{type}/{id}/{compartment}`` would take these
paths.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fhirhub.api.bodies import read_body, refuse_declared_oversize
from fhirhub.api.deps import DatabaseDep, SettingsDep
from fhirhub.api.inputs import refuse_nul
from fhirhub.api.responses import fhir_response, negotiate
from fhirhub.errors import FhirError, bad_request
from fhirhub.model.json import loads
from fhirhub.model.resource_types import is_valid_id
from fhirhub.services import measures

router = APIRouter(prefix="/fhir", dependencies=[Depends(refuse_nul)])

MEDIA = {"application/fhir+json", "application/json", "application/json+fhir"}
_VALUE_KEYS = ("valueDate", "valueDateTime", "valueString", "valueCode", "valueUri", "valueId")


def _query(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def _parameters(body: Any) -> list[tuple[str, str]]:
    """The name/value pairs of a ``Parameters`` resource (``subject`` may be a valueReference)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("The body must be a Parameters resource", "Parameters", "structure")
    out = []
    for i, param in enumerate(body.get("parameter") or []):
        where = f"Parameters.parameter[{i}]"
        name = param.get("name") if isinstance(param, dict) else None
        if not isinstance(name, str):
            raise bad_request("a parameter needs a name", f"{where}.name", "required")
        value = next((param[k] for k in _VALUE_KEYS if k in param), None)
        if value is None and isinstance(param.get("valueReference"), dict):
            value = param["valueReference"].get("reference")
        if not isinstance(value, str):
            raise bad_request(
                f"parameter '{name}' needs a value (valueDate, valueString, valueCode or "
                "valueReference)",
                where,
                "required",
            )
        out.append((name, value))
    return out


async def _params(request: Request, settings: Any) -> list[tuple[str, str]]:
    params = _query(request)
    if request.method != "POST":
        return params
    refuse_declared_oversize(request, settings.max_body_bytes)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw = await read_body(request, settings.max_body_bytes, allow_empty=True)
    if not raw.strip():
        return params
    if ctype not in MEDIA:
        raise FhirError.single(
            415,
            "not-supported",
            f"Content-Type '{ctype or '(none)'}' is not supported; send application/fhir+json",
        )
    return params + _parameters(loads(raw))


async def _evaluate_all(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    negotiate(request)
    params = await _params(request, settings)
    directory = settings.measures_dir
    bundle = await db.search(
        lambda conn: measures.evaluate_all(conn, directory, params),
        request=request,
        timeout=settings.measure_timeout,
    )
    return fhir_response(bundle, request)


async def _evaluate_one(
    request: Request, db: DatabaseDep, settings: SettingsDep, measure_id: str
) -> Response:
    negotiate(request)
    if not is_valid_id(measure_id):
        raise bad_request(f"'{measure_id}' is not a valid Measure id", "Measure.id")
    params = await _params(request, settings)
    directory = settings.measures_dir
    report = await db.search(
        lambda conn: measures.evaluate(conn, directory, measure_id, params),
        request=request,
        timeout=settings.measure_timeout,
    )
    return fhir_response(report, request)


# GET and POST as routes of their own: one operation id each in the OpenAPI document
router.get("/Measure/$evaluate-measure", operation_id="evaluate_all_get")(_evaluate_all)
router.post("/Measure/$evaluate-measure", operation_id="evaluate_all_post")(_evaluate_all)
router.get("/Measure/{measure_id}/$evaluate-measure", operation_id="evaluate_get")(_evaluate_one)
router.post("/Measure/{measure_id}/$evaluate-measure", operation_id="evaluate_post")(_evaluate_one)


@router.get("/Measure/{measure_id}/$data-requirements")
async def data_requirements(request: Request, settings: SettingsDep, measure_id: str) -> Response:
    negotiate(request)
    if not is_valid_id(measure_id):
        raise bad_request(f"'{measure_id}' is not a valid Measure id", "Measure.id")
    return fhir_response(measures.data_requirements(settings.measures_dir, measure_id), request)
