"""The FHIR REST API at ``/fhir``. http://hl7.org/fhir/R4/http.html

Each route parses the request, runs one service in a worker thread inside one database
transaction, and renders the result. A Bundle that a source's adapter claims (a
Puskesmas upload) goes through the ingest pipeline instead: kept in the inbox, mapped to the
canonical form, stored, and answered with its transaction-response (or refused, and kept).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from fhirhub.api.authorize import bound_source
from fhirhub.api.bodies import read_body, refuse_declared_oversize
from fhirhub.api.deps import DatabaseDep, SettingsDep, base_url
from fhirhub.api.facility import access_of, as_client, readable_types
from fhirhub.api.inputs import allow_head, refuse_nul
from fhirhub.api.responses import (
    FHIR_JSON,
    content_response,
    fhir_response,
    negotiate,
    outcome_response,
    prefer,
    version_headers,
)
from fhirhub.config import Settings
from fhirhub.errors import FhirError, Issue, bad_request
from fhirhub.ingest.service import IngestService
from fhirhub.model.instant import now_us, to_instant
from fhirhub.model.json import loads
from fhirhub.model.resource_types import resource_types
from fhirhub.search.access import Access
from fhirhub.services import audit, capabilities, history, read, transaction
from fhirhub.services.writes import Result, Writer, check_type, parse_etag
from fhirhub.storage.repository import ResourceRepository

router = APIRouter(prefix="/fhir", dependencies=[Depends(refuse_nul)])

RESOURCE_MEDIA = {"application/fhir+json", "application/json", "application/json+fhir"}
PATCH_MEDIA = {"application/json-patch+json"}
_STARTED = to_instant(now_us())


# --- request helpers -----------------------------------------------------------------------


async def _body(request: Request, settings: Settings, media: set[str]) -> Any:
    """The parsed JSON body, refusing what is too large, of the wrong type, or missing."""
    return loads(await _raw_body(request, settings, media))


async def _raw_body(request: Request, settings: Settings, media: set[str]) -> bytes:
    refuse_declared_oversize(request, settings.max_body_bytes)  # 413 before 415
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in media:
        raise FhirError.single(
            415,
            "not-supported",
            f"Content-Type '{ctype or '(none)'}' is not supported; send "
            + " or ".join(sorted(media)),
        )
    return await read_body(request, settings.max_body_bytes)


def _resource_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object (a FHIR resource)", code="structure")
    return body


def _write_response(request: Request, result: Result, base: str) -> Response:
    """Render a create/update/patch result as ``Prefer: return`` asks."""
    headers = version_headers(result.version, result.last_updated)
    headers["Location"] = f"{base}/{result.location}"
    want = prefer(request, "return") or "representation"
    if want == "minimal" or result.content is None:
        return Response(status_code=result.status, headers=headers)
    if want == "operationoutcome":
        return outcome_response(
            result.status,
            [Issue("informational", f"{result.location} stored", severity="information")],
            headers,
        )
    return content_response(result.content, request, result.status, headers)


def _query(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items()]


def _conditional_query(request: Request) -> str:
    keep = [(k, v) for k, v in _query(request) if k not in ("_format", "_pretty")]
    if not keep:
        raise bad_request("A conditional interaction needs search parameters in the URL")
    return urlencode(keep)


async def _in_write(request: Request, db: DatabaseDep, fn: Any, *args: Any) -> Any:
    """``fn(writer, *args)`` in one transaction, the writer bound to the request's client."""
    work = as_client(request, lambda writer: fn(writer, *args))
    return await db.run(lambda: db.transact(work))


async def _in_read(db: DatabaseDep, fn: Any, *args: Any, one_statement: bool = False) -> Any:
    if not one_statement:  # history, $everything: cancelled at the search timeout, as searches
        return await db.search(lambda conn: fn(ResourceRepository(conn), *args))

    def run() -> Any:
        with db.read(one_statement=one_statement) as repo:
            return fn(repo, *args)

    return await db.run(run)


# --- system level --------------------------------------------------------------------------


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    negotiate(request)
    return fhir_response(capabilities.capability_statement(base_url(request), _STARTED), request)


@router.api_route("/metadata", methods=["PUT", "POST", "DELETE", "PATCH"], include_in_schema=False)
async def metadata_not_writable() -> Response:
    """The CapabilityStatement is read only: 405, not the 404 of a type named 'metadata'."""
    raise FhirError(
        405,
        [Issue("not-supported", "metadata is read only; use GET")],
        {"Allow": "GET, HEAD"},
    )


@router.post("")
async def transaction_or_batch(
    request: Request, db: DatabaseDep, settings: SettingsDep
) -> Response:
    negotiate(request)
    raw = await _raw_body(request, settings, RESOURCE_MEDIA)
    bundle = loads(raw)
    ingest: IngestService = request.app.state.ingest
    bound = bound_source(request)  # a facility's Bundles: through its adapter, as itself
    source = bound[0] if bound else ingest.claim(bundle) if isinstance(bundle, dict) else None
    if source is not None:  # a source's Bundle: kept in the inbox, mapped by its adapter
        answer = await db.run(
            partial(
                ingest.answer,
                source,
                raw,
                content_type=request.headers.get("content-type"),
                base_url=base_url(request),
                sender=bound[1] if bound else None,
            )
        )
        if answer.status != 200:
            return Response(answer.body, status_code=answer.status, media_type=FHIR_JSON)
        if prefer(request, "return") != "representation":
            return content_response(answer.body.decode(), request, 200)
        response = loads(answer.body)
        await _in_read(db, _with_resources, response)
        return fhir_response(response, request)
    base = base_url(request)
    return_resources = prefer(request, "return") == "representation"
    access = access_of(request)

    def run(writer: Writer) -> dict[str, Any]:
        repo = writer.repo
        return transaction.process(
            writer,
            bundle,
            base_url=base,
            get=lambda url: _bundle_get(repo, url, base, settings, access),
            return_resources=return_resources,
        )

    return fhir_response(await _in_write(request, db, run), request)


def _with_resources(repo: ResourceRepository, response: dict[str, Any]) -> None:
    """Add to each entry of a transaction-response the version its location names."""
    for entry in response.get("entry", []):
        location = str(entry.get("response", {}).get("location", ""))
        parts = location.split("/")
        if len(parts) == 4 and parts[2] == "_history":
            found = repo.version(parts[0], parts[1], int(parts[3]))
            if found is not None and found.content is not None and not found.deleted:
                entry["resource"] = loads(found.content)


@router.get("")
async def search_system(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    negotiate(request)
    return await _search(request, db, None, _query(request))


@router.get("/_history")
async def history_system(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    negotiate(request)
    return await _history(request, db, settings, None, None)


@router.post("/$reindex")
async def reindex_all(request: Request, db: DatabaseDep) -> Response:
    """Rebuild the search index of every current resource (after definitions change)."""
    negotiate(request)
    return await _reindex(request, db, None)


# --- type level ----------------------------------------------------------------------------


@router.post("/{res_type}/$reindex")
async def reindex_type(request: Request, db: DatabaseDep, res_type: str) -> Response:
    negotiate(request)
    check_type(res_type)
    return await _reindex(request, db, res_type)


@router.get("/{res_type}")
async def search_type(request: Request, db: DatabaseDep, res_type: str) -> Response:
    negotiate(request)
    check_type(res_type)
    return await _search(request, db, res_type, _query(request))


@router.post("/{res_type}/_search")
async def search_post(request: Request, db: DatabaseDep, res_type: str) -> Response:
    negotiate(request)
    check_type(res_type)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in ("application/x-www-form-urlencoded", ""):
        raise FhirError.single(
            415, "not-supported", "POST _search takes application/x-www-form-urlencoded"
        )
    settings: Settings = request.app.state.settings
    body = await read_body(request, settings.max_search_body_bytes, allow_empty=True)
    form = parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
    return await _search(request, db, res_type, _query(request) + form)


@router.post("/{res_type}")
async def create(
    request: Request, db: DatabaseDep, settings: SettingsDep, res_type: str
) -> Response:
    negotiate(request)
    check_type(res_type)
    resource = _resource_body(await _body(request, settings, RESOURCE_MEDIA))
    if resource.get("resourceType") != res_type:
        raise bad_request(
            f"The body is a {resource.get('resourceType')}, not a {res_type}", "resourceType"
        )
    if_none_exist = request.headers.get("if-none-exist")
    result = await _in_write(
        request, db, lambda writer: writer.create(resource, if_none_exist=if_none_exist)
    )
    return _write_response(request, result, base_url(request))


@router.put("/{res_type}")
async def conditional_update(
    request: Request, db: DatabaseDep, settings: SettingsDep, res_type: str
) -> Response:
    negotiate(request)
    check_type(res_type)
    query = _conditional_query(request)
    resource = _resource_body(await _body(request, settings, RESOURCE_MEDIA))
    if_match = request.headers.get("if-match")
    result = await _in_write(
        request,
        db,
        lambda writer: writer.conditional_update(res_type, query, resource, if_match=if_match),
    )
    return _write_response(request, result, base_url(request))


@router.delete("/{res_type}")
async def conditional_delete(request: Request, db: DatabaseDep, res_type: str) -> Response:
    negotiate(request)
    check_type(res_type)
    query = _conditional_query(request)
    result = await _in_write(request, db, lambda writer: writer.conditional_delete(res_type, query))
    return _delete_response(result)


@router.get("/{res_type}/_history")
async def history_type(
    request: Request, db: DatabaseDep, settings: SettingsDep, res_type: str
) -> Response:
    negotiate(request)
    return await _history(request, db, settings, res_type, None)


# --- instance level ------------------------------------------------------------------------


@router.get("/{res_type}/{res_id}")
async def read_instance(request: Request, db: DatabaseDep, res_type: str, res_id: str) -> Response:
    negotiate(request)
    found = await db.read_by_id(read.read, res_type, res_id)
    await _refuse_unreachable(request, db, res_type, res_id)
    audit.note("content", found.content)  # its AuditEvent names its Patient (parsed later)
    headers = version_headers(found.version, found.last_updated)
    if _not_modified(request, found.version, found.last_updated):
        return Response(status_code=304, headers=headers)
    assert found.content is not None
    return content_response(found.content, request, 200, headers)


@router.put("/{res_type}/{res_id}")
async def update(
    request: Request, db: DatabaseDep, settings: SettingsDep, res_type: str, res_id: str
) -> Response:
    negotiate(request)
    check_type(res_type)
    resource = _resource_body(await _body(request, settings, RESOURCE_MEDIA))
    if_match = request.headers.get("if-match")
    result = await _in_write(
        request, db, lambda writer: writer.update(res_type, res_id, resource, if_match=if_match)
    )
    return _write_response(request, result, base_url(request))


@router.patch("/{res_type}/{res_id}")
async def patch(
    request: Request, db: DatabaseDep, settings: SettingsDep, res_type: str, res_id: str
) -> Response:
    negotiate(request)
    check_type(res_type)
    operations = await _body(request, settings, PATCH_MEDIA)
    if not isinstance(operations, list):
        raise bad_request("A JSON Patch is a list of operations", code="structure")
    if_match = request.headers.get("if-match")
    result = await _in_write(
        request, db, lambda writer: writer.patch(res_type, res_id, operations, if_match=if_match)
    )
    return _write_response(request, result, base_url(request))


@router.delete("/{res_type}/{res_id}")
async def delete(request: Request, db: DatabaseDep, res_type: str, res_id: str) -> Response:
    negotiate(request)
    result = await _in_write(request, db, lambda writer: writer.delete(res_type, res_id))
    return _delete_response(result)


@router.get("/{res_type}/{res_id}/_history")
async def history_instance(
    request: Request, db: DatabaseDep, settings: SettingsDep, res_type: str, res_id: str
) -> Response:
    negotiate(request)
    return await _history(request, db, settings, res_type, res_id)


@router.get("/{res_type}/{res_id}/_history/{version}")
async def vread(
    request: Request, db: DatabaseDep, res_type: str, res_id: str, version: str
) -> Response:
    negotiate(request)
    found = await _in_read(db, read.vread, res_type, res_id, version, one_statement=True)
    await _refuse_unreachable(request, db, res_type, res_id)
    assert found.content is not None
    audit.note("content", found.content)
    headers = version_headers(found.version, found.last_updated)
    return content_response(found.content, request, 200, headers)


@router.get("/{res_type}/{res_id}/{compartment_type}")
async def compartment_search(
    request: Request, db: DatabaseDep, res_type: str, res_id: str, compartment_type: str
) -> Response:
    negotiate(request)
    check_type(res_type)
    if compartment_type == "$everything" and res_type == "Patient":
        from fhirhub.services import everything

        base = base_url(request)
        answer = await _in_read(
            db,
            lambda repo: everything.everything(
                repo.conn,
                patient_id=res_id,
                params=_query(request),
                base_url=base,
                access=access_of(request),
                readable=readable_types(request, resource_types()),
            ),
        )
        if isinstance(answer, dict):
            return fhir_response(answer, request)

        def pieces() -> Iterator[bytes]:  # iterated in a worker thread, a batch at a time
            with db.read() as repo:
                yield from everything.stream(repo.conn, answer)

        return StreamingResponse(pieces(), media_type=FHIR_JSON)
    if compartment_type == "*":
        return await _search(request, db, None, _query(request), (res_type, res_id))
    check_type(compartment_type)
    return await _search(request, db, compartment_type, _query(request), (res_type, res_id))


# --- shared --------------------------------------------------------------------------------


async def _refuse_unreachable(
    request: Request, db: DatabaseDep, res_type: str, res_id: str
) -> None:
    """403 for a facility client reading a record that is not one it may read."""
    access = access_of(request)
    if access is None:
        return

    def check() -> None:
        with db.read() as repo:
            read.refuse_unreachable(repo, access, res_type, res_id)

    await db.run(check)


async def _search(
    request: Request,
    db: DatabaseDep,
    res_type: str | None,
    params: list[tuple[str, str]],
    compartment: tuple[str, str] | None = None,
) -> Response:
    from fhirhub.services import search

    base = base_url(request)
    strict = prefer(request, "handling") == "strict"
    limits = search.SearchLimits.from_settings(request.app.state.settings)
    bundle = await db.search(
        lambda conn: search.search(
            conn,
            res_type=res_type,
            params=params,
            base_url=base,
            compartment=compartment,
            strict=strict,
            limits=limits,
            access=access_of(request),
        ),
        request=request,
    )
    return fhir_response(bundle, request)


async def _history(
    request: Request,
    db: DatabaseDep,
    settings: Settings,
    res_type: str | None,
    res_id: str | None,
) -> Response:
    base = base_url(request)
    params = _query(request)
    bundle = await _in_read(
        db,
        lambda repo: history.history(
            repo,
            res_type=res_type,
            res_id=res_id,
            params=params,
            base_url=base,
            default_count=settings.default_page_size,
            max_count=settings.max_page_size,
            access=access_of(request),
        ),
    )
    return fhir_response(bundle, request)


async def _reindex(request: Request, db: DatabaseDep, res_type: str | None) -> Response:
    from fhirhub.services import search

    count = await _in_write(
        request, db, lambda writer: search.reindex(writer.repo.conn, res_type=res_type)
    )
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reindexed", "valueInteger": count}],
    }
    return fhir_response(parameters, request)


def _delete_response(result: Result) -> Response:
    headers = {"ETag": f'W/"{result.version}"'} if result.version else {}
    return Response(status_code=204, headers=headers)


def _not_modified(request: Request, version: int, last_updated: int) -> bool:
    """Conditional read: If-None-Match (version ETag) or If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match:
        return parse_etag(if_none_match, "If-None-Match") == version
    since = request.headers.get("if-modified-since")
    if since:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return last_updated // 1_000_000 <= int(when.timestamp())
    return False


def _bundle_get(
    repo: ResourceRepository, url: str, base: str, settings: Settings, access: Access | None
) -> tuple[int, Any]:
    """A GET entry of a batch or transaction: read, vread or search (of what ``access``
    reaches, for a facility client)."""
    from fhirhub.services import search

    path, _, query = url.partition("?")
    parts = [p for p in path.strip("/").split("/") if p]
    try:
        if len(parts) == 2:
            found = read.read(repo, parts[0], parts[1])
            if access is not None:
                read.refuse_unreachable(repo, access, parts[0], parts[1])
            return 200, loads(found.content or "{}")
        if len(parts) == 4 and parts[2] == "_history":
            found = read.vread(repo, parts[0], parts[1], parts[3])
            if access is not None:
                read.refuse_unreachable(repo, access, parts[0], parts[1])
            return 200, loads(found.content or "{}")
        if len(parts) == 1:
            check_type(parts[0])
            params = parse_qsl(query, keep_blank_values=True)
            return 200, search.search(
                repo.conn, res_type=parts[0], params=params, base_url=base, access=access
            )
    except FhirError as err:
        return err.status, {
            "resourceType": "OperationOutcome",
            "issue": [i.to_fhir() for i in err.issues],
        }
    return 400, {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "not-supported",
                "diagnostics": f"GET {url} is not supported in a Bundle",
            }
        ],
    }


allow_head(router)
