"""The inbox as JSON for administrators: list, show (with the payload on request), replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from fhirhub.api.ingest_routes import ingest_service, json_response
from fhirhub.api.inputs import MAX_ID, MessageId, allow_head, refuse_nul
from fhirhub.ingest.service import describe
from fhirhub.storage.inbox_status import Status

router = APIRouter(prefix="/admin/inbox", tags=["admin"], dependencies=[Depends(refuse_nul)])
PAYLOAD_TYPES = {
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "x-application/hl7-v2+er7",
    "application/hl7-v2",
    "text/plain",
}


@router.get("")
async def list_messages(
    request: Request,
    status: Status | None = None,
    source: str | None = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    rows = await run_in_threadpool(
        ingest_service(request).messages,
        status=status.value if status else None,
        source=source,
        after_id=after,
        limit=limit,
    )
    body: dict[str, object] = {"messages": [describe(r) for r in rows]}
    if len(rows) == limit:
        body["next"] = str(request.url.include_query_params(after=rows[-1].id))
    return json_response(body)


@router.get("/counts")
async def counts(request: Request) -> Response:
    rows = await run_in_threadpool(ingest_service(request).counts)
    out: dict[str, dict[str, int]] = {}
    for source, status, n in rows:
        out.setdefault(source, {})[status] = n
    return json_response(out)


@router.get("/{message_id}")
async def show(request: Request, message_id: MessageId) -> Response:
    row = await run_in_threadpool(ingest_service(request).get, message_id)
    return json_response(describe(row))


@router.get("/{message_id}/payload")
async def payload(request: Request, message_id: MessageId) -> Response:
    service = ingest_service(request)
    row = await run_in_threadpool(service.get, message_id)
    raw = await run_in_threadpool(service.payload, message_id)
    # The sender chose the Content-Type: served as it came, text/html would run in an
    # administrator's browser. Only the media types the sources send are named; always a
    # download, never sniffed (X-Content-Type-Options comes with every response).
    declared = (row.content_type or "").split(";", 1)[0].strip().lower()
    media = declared if declared in PAYLOAD_TYPES else "application/octet-stream"
    disposition = f'attachment; filename="message-{message_id}.payload"'
    return Response(raw, media_type=media, headers={"Content-Disposition": disposition})


@router.post("/{message_id}/replay", status_code=202)
async def replay(request: Request, message_id: MessageId) -> Response:
    service = ingest_service(request)
    await run_in_threadpool(service.replay, [message_id])
    row = await run_in_threadpool(service.get, message_id)
    return json_response(describe(row), status_code=202)


allow_head(router)
