"""Ingest endpoints: ``POST /ingest/{source}`` and ``GET /ingest/status/{id}``.

The payload is kept in the inbox (committed) before anything else; the answer is ``202
Accepted`` with the status URL, and a worker (or, with no broker, this process) maps and stores
it. ``?mode=sync`` processes it within the request through the same pipeline and answers with
the outcome: 200 when stored, the OperationOutcome (422, or 400 for invalid FHIR) when rejected.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from fhirhub.api.authorize import bound_source
from fhirhub.api.bodies import read_body
from fhirhub.api.deps import Database, SettingsDep
from fhirhub.api.inputs import MessageId, allow_head, refuse_nul
from fhirhub.ingest.service import IngestService, describe

router = APIRouter(prefix="/ingest", tags=["ingest"], dependencies=[Depends(refuse_nul)])


def json_response(
    body: object, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status_code, headers=headers, media_type="application/json"
    )


def ingest_service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest
    return service


@router.post("/{source}", status_code=202)
async def ingest(
    request: Request,
    settings: SettingsDep,
    source: str,
    sender: Annotated[str | None, Query(max_length=128)] = None,
    mode: Annotated[Literal["async", "sync"], Query()] = "async",
) -> Response:
    service = ingest_service(request)
    bound = bound_source(request)  # an authenticated facility sends as its Organization
    if bound is not None:
        sender = bound[1]
    payload = await read_body(request, settings.max_body_bytes)
    ctype = request.headers.get("content-type")
    status_url = str(request.url_for("ingest_status", message_id=0)).rsplit("/", 1)[0]
    db: Database = request.app.state.database  # at most as many at once as it has connections
    if mode == "sync":
        row = await db.run(
            partial(service.submit_and_process, source, payload, sender=sender, content_type=ctype)
        )
        body = describe(row)
        headers = {"Location": f"{status_url}/{row.id}"}
        if row.status == "rejected" and row.outcome:
            return Response(
                row.outcome.encode(),
                status_code=row.outcome_status or 422,
                headers=headers,
                media_type="application/fhir+json",
            )
        code = 200 if row.status == "processed" else 500
        return json_response(body, status_code=code, headers=headers)
    receipt = await db.run(
        partial(service.submit, source, payload, sender=sender, content_type=ctype)
    )
    location = f"{status_url}/{receipt.id}"
    return json_response(
        {
            "id": receipt.id,
            "status": receipt.status,
            "duplicate": receipt.duplicate,
            "statusUrl": location,
        },
        status_code=202,
        headers={"Location": location, "Content-Location": location},
    )


@router.get("/status/{message_id}", name="ingest_status")
async def ingest_status(request: Request, message_id: MessageId) -> Response:
    row = await run_in_threadpool(ingest_service(request).get, message_id)
    return json_response(describe(row))


allow_head(router)
