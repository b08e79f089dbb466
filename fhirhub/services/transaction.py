"""Transaction and batch Bundles. http://hl7.org/fhir/R4/http.html#transaction

A transaction is one database transaction: every entry succeeds or nothing is stored. Entries
run in the specification's order (DELETE, POST, PUT/PATCH, GET/HEAD); ``urn:uuid:`` and other
fullUrls are rewritten to the ids the server assigns, and conditional references
(``Patient?identifier=...``) are resolved by search. Batch entries are independent: each runs
in a savepoint of its own and fails alone.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from fhirhub.errors import FhirError, Issue, bad_request, conflict, operation_outcome
from fhirhub.model.json import loads
from fhirhub.model.resource_types import is_resource_type
from fhirhub.model.validation import resource_issues
from fhirhub.search import find_matches
from fhirhub.services.writes import Result, Writer, instant, require_criteria
from fhirhub.storage.repository import lost_race

T = TypeVar("T")
log = logging.getLogger("fhirhub.services")
# A batch entry that lost a race to a concurrent writer is run again once (see _batch_entry).
ENTRY_ATTEMPTS = 2

# A URL with a scheme (http:, https:, urn:): absolute, so not relative to this server's base.
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}

# Runs a GET entry (read, vread or search) and returns (status, resource dict or None).
GetHandler = Callable[[str], tuple[int, Any]]


@dataclass
class Entry:
    index: int
    method: str
    url: str  # relative to the base: "Patient", "Patient/1", "Patient?identifier=..."
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: str | None

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"

    @property
    def path(self) -> str:
        return self.url.split("?", 1)[0].strip("/")

    @property
    def query(self) -> str | None:
        return self.url.split("?", 1)[1] if "?" in self.url else None


def process(
    writer: Writer,
    bundle: Any,
    *,
    base_url: str,
    get: GetHandler,
    return_resources: bool = False,
) -> dict[str, Any]:
    """Run a transaction or batch Bundle; return its response Bundle. What it wrote may still be
    staged: the caller flushes the writer (``Writer.finish`` or ``flush``) before it commits."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise bad_request("POST to the base needs a Bundle", "Bundle", code="structure")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise bad_request(f"Bundle.type must be transaction or batch, not '{kind}'", "Bundle.type")
    raw_entries = bundle.get("entry", [])
    if not isinstance(raw_entries, list):
        raise bad_request("Bundle.entry must be a list", "Bundle.entry", code="structure")
    writer.note_interaction(kind)  # its AuditEvent: one for the Bundle, an entity per entry
    if kind == "batch":
        return _batch(writer, raw_entries, base_url, get, return_resources)
    return _transaction(writer, raw_entries, base_url, get, return_resources)


# --- transaction ---------------------------------------------------------------------------


def _transaction(
    writer: Writer,
    raw_entries: list[Any],
    base_url: str,
    get: GetHandler,
    return_resources: bool,
) -> dict[str, Any]:
    entries, issues = [], []
    for i, raw in enumerate(raw_entries):
        try:
            entries.append(parse_entry(i, raw, base_url))
        except FhirError as err:
            issues.extend(err.issues)
    for entry in entries:
        if entry.resource is not None and entry.method in ("POST", "PUT"):
            issues.extend(resource_issues(entry.resource, f"{entry.where}.resource"))
    if issues:
        raise FhirError(400, issues)
    _check_duplicates(entries)
    ordered = sorted(entries, key=lambda e: (_ORDER[e.method], e.index))
    writer.prefetch(
        [
            _type_id(e.path)
            for e in ordered
            if e.method in ("PUT", "PATCH", "DELETE") and not e.query and "/" in e.path
        ]
    )
    ids = _assign_ids(writer, ordered, base_url)
    responses: dict[int, dict[str, Any]] = {}
    for entry in ordered:
        try:
            if entry.method in ("GET", "HEAD"):
                writer.flush()
                responses[entry.index] = _get_response(entry, get)
                continue
            if entry.resource is not None:
                _rewrite_references(writer, entry, ids)
            result = _write(writer, entry, ids)
        except FhirError as err:
            raise _at_entry(err, entry) from None
        responses[entry.index] = _response(result, return_resources, base_url)
    # Not flushed here: the caller's flush (Writer.finish, with the AuditEvent) stores it all
    # in one round of writes.
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [responses[i] for i in range(len(entries))],
    }


def _assign_ids(writer: Writer, ordered: list[Entry], base_url: str) -> dict[str, str]:
    """fullUrl -> "Type/id" for every entry that creates or updates, before any is written.

    Conditional creates are matched here (and locked), so references to them point at the
    resource that exists, if one does: all of them at once (one lock statement and one search
    for a Bundle, not one each).
    """
    conditional = [
        e for e in ordered if e.method == "POST" and e.resource is not None and e.if_none_exist
    ]
    # Every condition of the transaction is locked here, at once and in one order whatever
    # the entries' (locked entry by entry, two Bundles naming the same resources in opposite
    # orders deadlocked); a conditional update or delete takes its lock again where it is
    # searched, already held (no wait).
    writer.lock_conditions(
        [(e.path, str(e.if_none_exist)) for e in conditional]
        + [
            (e.path, e.query)
            for e in ordered
            if e.query is not None and e.method in ("PUT", "PATCH", "DELETE")
        ]
    )
    found = writer.matches_many(
        [(e.path, str(e.if_none_exist), f"{e.where}.request.ifNoneExist") for e in conditional],
        lock=False,  # locked above
        what="ifNoneExist",
    )
    matched = dict(zip((e.index for e in conditional), found, strict=True))
    ids: dict[str, str] = {}
    for entry in ordered:
        if entry.method == "POST" and entry.resource is not None:
            res_type = entry.path
            existing = None
            if entry.if_none_exist:
                hits = matched[entry.index]
                if isinstance(hits, FhirError):
                    raise _at_entry(hits, entry)
                if len(hits) > 1:
                    raise _at_entry(
                        FhirError.single(
                            412,
                            "multiple-matches",
                            f"ifNoneExist '{entry.if_none_exist}' matches {len(hits)} resources",
                        ),
                        entry,
                    )
                existing = hits[0][1] if hits else None
            new_id = existing or str(uuid.uuid4())
            entry.resource = {**entry.resource, "id": new_id}
            entry.if_none_exist = None if existing is None else entry.if_none_exist
            _remember(ids, entry, f"{res_type}/{new_id}", base_url)
        elif entry.method == "PUT" and entry.resource is not None:
            if entry.query is not None:  # resolve the condition now, so others can refer to it
                try:
                    res_id = writer.conditional_target(entry.path, entry.query, entry.resource)
                except FhirError as err:
                    raise _at_entry(err, entry) from None
                entry.resource = {**entry.resource, "id": res_id}
                entry.url = f"{entry.path}/{res_id}"
            _remember(ids, entry, entry.path, base_url)
    return ids


def _remember(ids: dict[str, str], entry: Entry, target: str, base_url: str) -> None:
    if entry.full_url:
        ids[entry.full_url] = target
        if entry.full_url.startswith(base_url + "/"):
            ids[entry.full_url[len(base_url) + 1 :]] = target


def _write(writer: Writer, entry: Entry, ids: dict[str, str]) -> Result:
    if entry.method == "POST":
        assert entry.resource is not None
        if entry.if_none_exist:  # matched an existing resource in _assign_ids
            return writer.existing(entry.path, entry.resource["id"])
        return writer.store_new(entry.resource)
    if entry.method == "PUT":
        assert entry.resource is not None
        if entry.query is not None:  # a batch entry (a transaction resolved it in _assign_ids)
            return writer.conditional_update(
                entry.path, entry.query, entry.resource, if_match=entry.if_match, validated=True
            )
        res_type, res_id = _type_id(entry.path)
        return writer.update(
            res_type, res_id, entry.resource, if_match=entry.if_match, validated=True
        )
    if entry.method == "PATCH":
        res_type, res_id = _type_id(entry.path)
        return writer.patch(res_type, res_id, _patch_operations(entry), if_match=entry.if_match)
    if entry.method == "DELETE":
        if entry.query is not None:
            return writer.conditional_delete(entry.path, entry.query)
        res_type, res_id = _type_id(entry.path)
        return writer.delete(res_type, res_id)
    raise bad_request(f"Unsupported method {entry.method}", f"{entry.where}.request.method")


# --- batch ---------------------------------------------------------------------------------


def _batch(
    writer: Writer,
    raw_entries: list[Any],
    base_url: str,
    get: GetHandler,
    return_resources: bool,
) -> dict[str, Any]:
    responses = [
        _batch_entry(writer, i, raw, base_url, get, return_resources)
        for i, raw in enumerate(raw_entries)
    ]
    return {"resourceType": "Bundle", "type": "batch-response", "entry": responses}


def _batch_entry(
    writer: Writer, index: int, raw: Any, base_url: str, get: GetHandler, return_resources: bool
) -> dict[str, Any]:
    """The response to one batch entry. Whatever it meets, a typed error or an unexpected one,
    is its own: it runs in a savepoint, which undoes its writes alone when it fails."""

    def run() -> dict[str, Any]:
        entry = parse_entry(index, raw, base_url)
        if entry.method in ("GET", "HEAD"):
            return _get_response(entry, get)
        if entry.resource is not None and entry.method in ("POST", "PUT"):
            issues = resource_issues(entry.resource, f"{entry.where}.resource")
            if issues:
                raise FhirError(400, issues)
        if entry.resource is not None:
            _rewrite_references(writer, entry, {})
        if entry.method == "POST":
            assert entry.resource is not None
            result = writer.create(
                entry.resource, if_none_exist=entry.if_none_exist, validated=True
            )
        else:
            result = _write(writer, entry, {})
        return _response(result, return_resources, base_url)

    for attempt in range(1, ENTRY_ATTEMPTS + 1):
        try:
            return _in_savepoint(writer, run)
        except FhirError as err:
            return _error_response(err)
        except _TransactionLost as lost:
            raise lost.error from None
        except Exception as exc:
            if lost_race(exc):
                if attempt < ENTRY_ATTEMPTS:
                    continue  # the writer it lost to has committed: run it again, after that one
                return _error_response(
                    conflict(f"entry {index}: a concurrent request changed the same resource")
                )
            # The type and the frames only: an exception's message can quote patient data.
            log.error(
                "batch entry=%s failed: %s\n%s",
                index,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            return _error_response(
                FhirError.single(
                    500,
                    "exception",
                    f"entry {index}: internal error; this entry was not stored, the others are "
                    "unaffected",
                    f"Bundle.entry[{index}]",
                )
            )
    raise AssertionError("unreachable")


class _TransactionLost(Exception):
    """Rolling back to a batch entry's savepoint failed: the whole transaction is lost."""

    def __init__(self, error: Exception) -> None:
        super().__init__(type(error).__name__)
        self.error = error


def _in_savepoint(writer: Writer, work: Callable[[], T]) -> T:
    """Run ``work`` and store its writes in a savepoint, rolled back (with the writer's staged
    state) if anything fails."""
    savepoint = writer.repo.conn.begin_nested()
    try:
        result = work()
        writer.flush()
        savepoint.commit()
    except BaseException:
        writer.forget_pending()
        try:
            savepoint.rollback()
        except Exception as error:
            raise _TransactionLost(error) from error
        raise
    return result


# --- entries -------------------------------------------------------------------------------


def parse_entry(index: int, raw: Any, base_url: str) -> Entry:
    """Entry ``index`` of a batch or transaction as this server runs it; a 400 naming the
    offending element when it cannot run (also asked by the authorisation of a Bundle, so that
    a malformed entry gets the same answer with auth on as off)."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise bad_request("An entry must be an object", where, code="structure")
    request = raw.get("request")
    if not isinstance(request, dict):
        raise bad_request("The entry has no request", f"{where}.request", code="required")
    method = request.get("method")
    if not isinstance(method, str) or method not in _ORDER:
        shown = method if isinstance(method, str) else type(method).__name__
        raise bad_request(f"Unknown method '{shown[:20]}'", f"{where}.request.method")
    for key in ("ifNoneExist", "ifMatch", "ifNoneMatch", "ifModifiedSince"):
        if request.get(key) is not None and not isinstance(request[key], str):
            raise bad_request(f"request.{key} must be a string", f"{where}.request.{key}")
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise bad_request("The entry has no request.url", f"{where}.request.url", "required")
    if url.startswith(base_url + "/"):
        url = url[len(base_url) + 1 :]
    elif _ABSOLUTE.match(url):
        raise bad_request(
            f"request.url '{url[:200]}' is not on this server: give it relative to the base"
            f" ({base_url}), e.g. 'Patient/1'",
            f"{where}.request.url",
        )
    resource = raw.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise bad_request(f"A {method} entry needs a resource", f"{where}.resource", "required")
    path = url.split("?", 1)[0].strip("/")
    res_type = path.split("/", 1)[0]
    if not is_resource_type(res_type):
        raise FhirError.single(
            400, "not-supported", f"Unknown resource type '{res_type}'", f"{where}.request.url"
        )
    if (
        method in ("POST", "PUT")
        and resource is not None
        and resource.get("resourceType") != res_type
    ):
        raise bad_request(
            f"request.url names {res_type} but the resource is a {resource.get('resourceType')}",
            f"{where}.resource.resourceType",
        )
    if method == "POST" and "/" in path:
        raise bad_request("POST goes to the type, e.g. 'Patient'", f"{where}.request.url")
    if method in ("PUT", "PATCH", "DELETE") and "/" not in path and "?" not in url:
        raise bad_request(f"{method} needs Type/id or a condition", f"{where}.request.url")
    if method == "PUT" and resource is not None and "?" not in url:
        rid = path.split("/", 1)[1]
        if resource.get("id") is None:
            resource = {**resource, "id": rid}  # the url names it, as HAPI and Blaze accept
        elif resource.get("id") != rid:
            raise bad_request(
                f"resource.id '{resource.get('id')}' differs from request.url '{url}'",
                f"{where}.resource.id",
            )
    return Entry(
        index=index,
        method=method,
        url=url,
        resource=resource if isinstance(resource, dict) else None,
        full_url=raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None,
        if_none_exist=request.get("ifNoneExist") or None,
        if_match=request.get("ifMatch") or None,
    )


def _check_duplicates(entries: list[Entry]) -> None:
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.method in ("PUT", "PATCH", "DELETE") and entry.query is None:
            key = entry.path
        elif entry.full_url:
            key = entry.full_url
        else:
            continue
        if key in seen:
            raise bad_request(
                f"Entries {seen[key]} and {entry.index} both change {key}",
                f"{entry.where}.request.url",
                code="duplicate",
            )
        seen[key] = entry.index


def _type_id(path: str) -> tuple[str, str]:
    parts = path.split("/")
    if len(parts) != 2 or not parts[1]:
        raise bad_request(f"'{path}' is not Type/id")
    return parts[0], parts[1]


def _patch_operations(entry: Entry) -> Any:
    """The JSON Patch a PATCH entry carries as a Binary (base64 ``data``)."""
    import base64
    import binascii

    resource = entry.resource
    if not (resource and resource.get("resourceType") == "Binary" and "data" in resource):
        raise bad_request(
            "A PATCH entry needs a Binary resource holding a JSON Patch", f"{entry.where}.resource"
        )
    where = f"{entry.where}.resource.data"
    data = resource["data"]
    try:
        if not isinstance(data, str):
            raise ValueError
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("Binary.data is not base64", where) from None
    try:
        operations = loads(raw)
    except FhirError as err:
        raise bad_request(f"Binary.data is not a JSON Patch: {err.summary}", where) from None
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise bad_request("A JSON Patch is a list of operations", where, code="structure")
    return operations


def _rewrite_references(writer: Writer, entry: Entry, ids: dict[str, str]) -> None:
    """Point the entry's references at the resources they resolve to. The Bundle itself is
    left as it came (a copy is made of each object on the way to a changed reference), so
    that a unit of work that lost a race can run again from the same Bundle. Where a node
    sits is kept as a chain of steps, spelt out only at a reference (most nodes have none)."""

    def visit(node: Any, trail: _Trail) -> Any:
        changed: Any = None
        if type(node) is dict:
            for key, value in node.items():
                if key == "reference" and type(value) is str:
                    new = _resolve(writer, value, ids, _spell((trail, ".reference")))
                elif type(value) is dict or type(value) is list:
                    new = visit(value, (trail, "." + key))
                else:
                    continue
                if new is not value:
                    changed = changed if changed is not None else dict(node)
                    changed[key] = new
        elif type(node) is list:
            for i, item in enumerate(node):
                if type(item) is dict or type(item) is list:
                    new = visit(item, (trail, i))
                    if new is not item:
                        changed = changed if changed is not None else list(node)
                        changed[i] = new
        return node if changed is None else changed

    entry.resource = visit(entry.resource, (None, f"{entry.where}.resource"))


# (parent, step): a step is ".key", "[i]" as an int, or the path of the root.
_Trail = tuple[Any, str | int]


def _spell(trail: _Trail | None) -> str:
    steps: list[str] = []
    while trail is not None:
        trail, step = trail
        steps.append(f"[{step}]" if type(step) is int else str(step))
    return "".join(reversed(steps))


def _resolve(writer: Writer, reference: str, ids: dict[str, str], path: str) -> str:
    if reference in ids:
        return ids[reference]
    if reference.startswith("urn:uuid:") or reference.startswith("urn:oid:"):
        raise FhirError.single(
            404, "not-found", f"No entry of this Bundle has fullUrl {reference}", path
        )
    res_type, conditional, query = reference.partition("?")
    if conditional and "/" not in res_type:
        if not is_resource_type(res_type):
            raise bad_request(f"Unknown resource type in reference '{reference}'", path)
        require_criteria(res_type, query, "Conditional reference", path)
        writer.flush()
        found = find_matches(writer.repo.conn, res_type, query)
        if len(found) != 1:
            raise FhirError.single(
                412,
                "multiple-matches" if found else "not-found",
                f"Conditional reference {reference} matches {len(found)} resources",
                path,
            )
        return f"{res_type}/{found[0][1]}"
    return reference


# --- responses -----------------------------------------------------------------------------


def _response(result: Result, return_resources: bool, base_url: str) -> dict[str, Any]:
    response: dict[str, Any] = {"status": f"{result.status} {REASONS.get(result.status, '')}"}
    if result.version:
        response["location"] = result.location
        response["etag"] = result.etag
        response["lastModified"] = instant(result.last_updated)
    out: dict[str, Any] = {}
    if result.content is not None and result.status != 204:
        out["fullUrl"] = f"{base_url}/{result.res_type}/{result.res_id}"
        if return_resources:
            out["resource"] = orjson.Fragment(result.content)
    out["response"] = response
    return out


def _get_response(entry: Entry, get: GetHandler) -> dict[str, Any]:
    status, body = get(entry.url)
    out: dict[str, Any] = {"response": {"status": f"{status} {REASONS.get(status, '')}"}}
    if body is not None and entry.method == "GET":
        out["resource"] = body
    return out


def _error_response(err: FhirError) -> dict[str, Any]:
    return {
        "response": {
            "status": f"{err.status} {REASONS.get(err.status, '')}".strip(),
            "outcome": operation_outcome(err.issues),
        }
    }


def _at_entry(err: FhirError, entry: Entry) -> FhirError:
    """The same error, its issues located at the failing entry."""
    res_type = entry.path.split("/", 1)[0]
    issues = [
        Issue(
            issue.code,
            f"entry {entry.index} ({entry.method} {entry.url}): {issue.diagnostics}",
            tuple(_entry_expression(e, entry, res_type) for e in issue.expression)
            or (entry.where,),
            issue.severity,
        )
        for issue in err.issues
    ]
    return FhirError(err.status, issues, err.headers)


def _entry_expression(expression: str, entry: Entry, res_type: str) -> str:
    if expression.startswith("Bundle.entry["):
        return expression
    if expression == res_type or expression.startswith(res_type + "."):
        return f"{entry.where}.resource{expression[len(res_type) :]}"
    return f"{entry.where}.request"
