"""The patient index's operations (docs/mpi.md).

- ``POST /fhir/Patient/$match``: http://hl7.org/fhir/R4/patient-operation-match.html
- ``POST /fhir/Patient/$mpi-link`` (``source``, ``target``, optional ``reason``): a data
  steward's decision that two records are one citizen.
- ``POST /fhir/Patient/$mpi-unlink`` (``source``, optional ``reason``): that a record is not the
  citizen of the other records of its Person.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fhirhub.api.bodies import read_body, refuse_declared_oversize
from fhirhub.api.deps import DatabaseDep, SettingsDep, base_url
from fhirhub.api.facility import access_of
from fhirhub.api.inputs import refuse_nul
from fhirhub.api.responses import fhir_response, negotiate
from fhirhub.errors import FhirError, bad_request
from fhirhub.model.json import loads
from fhirhub.model.resource_types import is_valid_id
from fhirhub.model.validation import validate_resource
from fhirhub.services import patient_index
from fhirhub.services.writes import Writer

router = APIRouter(prefix="/fhir/Patient", dependencies=[Depends(refuse_nul)])
MEDIA = {"application/fhir+json", "application/json"}


async def _parameters(request: Request, max_bytes: int) -> dict[str, list[dict[str, Any]]]:
    """The body's Parameters, by name."""
    refuse_declared_oversize(request, max_bytes)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in MEDIA:
        raise FhirError.single(415, "not-supported", "Send a Parameters as application/fhir+json")
    body = loads(await read_body(request, max_bytes))
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("The body must be a Parameters resource", "Parameters")
    params = body.get("parameter")
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise bad_request(
            "Parameters.parameter must be a list of parameters", "Parameters.parameter"
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for p in params:
        out.setdefault(str(p.get("name")), []).append(p)
    return out


def _one(params: dict[str, list[dict[str, Any]]], name: str, required: bool = False) -> Any:
    found = params.get(name, [])
    where = f"Parameters.parameter[{name}]"
    if len(found) > 1:
        raise bad_request(f"Parameter '{name}' is given {len(found)} times", where)
    if not found:
        if required:
            raise bad_request(f"Parameter '{name}' is required", where, code="required")
        return None
    return found[0]


def _patient_ref(params: dict[str, list[dict[str, Any]]], name: str) -> str:
    p = _one(params, name, required=True)
    where = f"Parameters.parameter[{name}]"
    value = p.get("valueReference", {}).get("reference") if "valueReference" in p else None
    value = value or p.get("valueString")
    if not isinstance(value, str):
        raise bad_request(f"Parameter '{name}' must reference a Patient", where)
    res_type, _, res_id = value.rpartition("/")
    if res_type not in ("Patient", "") or not is_valid_id(res_id):
        raise bad_request(f"Parameter '{name}' must reference a Patient as Patient/<id>", where)
    return res_id


def _who(request: Request) -> str:
    """The client that decided (its id), for the Provenance of the decision."""
    client = getattr(request.state, "client", None)
    who = getattr(client, "client_id", None)
    return f"client {who}" if who else "unauthenticated client (auth off)"


@router.post("/$match")
async def match(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    negotiate(request)
    params = await _parameters(request, settings.max_body_bytes)
    p = _one(params, "resource", required=True)
    patient = p.get("resource")
    where = "Parameters.parameter[resource].resource"
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise bad_request("Parameter 'resource' must hold a Patient", where)
    validate_resource(patient, "Patient")
    only = _one(params, "onlyCertainMatches")
    only_certain = False
    if only is not None:
        if not isinstance(only.get("valueBoolean"), bool):
            raise bad_request(
                "onlyCertainMatches must be a valueBoolean",
                "Parameters.parameter[onlyCertainMatches]",
            )
        only_certain = only["valueBoolean"]
    count_param = _one(params, "count")
    count = None
    if count_param is not None:
        count = count_param.get("valueInteger")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise bad_request(
                "count must be a positive valueInteger", "Parameters.parameter[count]"
            )

    access = access_of(request)  # a facility matches only Patients it may read

    def run() -> list[patient_index.Match]:
        with db.read() as repo:
            if access is None:
                return patient_index.match(
                    repo.conn, patient, count=count, only_certain=only_certain
                )
            found = patient_index.match(repo.conn, patient, count=None, only_certain=only_certain)
            found = [m for m in found if access.reaches(repo.conn, "Patient", m.patient_id)]
            return found[:count] if count is not None else found

    found = await db.run(run)
    base = base_url(request)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "entry": [
            {
                "fullUrl": f"{base}/Patient/{m.patient_id}",
                "resource": m.body,
                "search": {
                    "extension": [{"url": patient_index.MATCH_GRADE, "valueCode": m.grade}],
                    "mode": "match",
                    "score": round(m.decision.probability, 6),
                },
            }
            for m in found
        ],
    }
    return fhir_response(bundle, request)


@router.post("/$mpi-link")
async def mpi_link(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    negotiate(request)
    params = await _parameters(request, settings.max_body_bytes)
    source, target = _patient_ref(params, "source"), _patient_ref(params, "target")
    why = _reason(params, "linked by a data steward")
    who = _who(request)
    index = _index()

    def work(w: Writer) -> str:
        return index.link(w, source, target, who, why)

    person = await db.run(lambda: db.transact(work))
    return fhir_response(_result(person), request)


@router.post("/$mpi-unlink")
async def mpi_unlink(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    negotiate(request)
    params = await _parameters(request, settings.max_body_bytes)
    source = _patient_ref(params, "source")
    why = _reason(params, "unlinked by a data steward")
    who = _who(request)
    index = _index()

    def work(w: Writer) -> str:
        return index.unlink(w, source, who, why)

    person = await db.run(lambda: db.transact(work))
    return fhir_response(_result(person), request)


def _index() -> patient_index.PatientIndex:
    index = Writer.default_index()
    if index is None:
        raise FhirError.single(
            501, "not-supported", "The patient index is off (FHIRHUB_PATIENT_INDEX=off)"
        )
    return index


def _reason(params: dict[str, list[dict[str, Any]]], default: str) -> str:
    p = _one(params, "reason")
    if p is None:
        return default
    value = p.get("valueString")
    if not isinstance(value, str) or not value.strip():
        raise bad_request("reason must be a valueString", "Parameters.parameter[reason]")
    return value.strip()[:500]


def _result(person_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "person", "valueReference": {"reference": f"Person/{person_id}"}}],
    }
