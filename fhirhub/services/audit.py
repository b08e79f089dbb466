"""AuditEvent: who did what to which record, from where, with what outcome (issue 13).

http://hl7.org/fhir/R4/auditevent.html

One AuditEvent per interaction. Its parts:

- ``type``: ``rest`` (http://terminology.hl7.org/CodeSystem/audit-event-type) for the FHIR REST
  API, DICOM ``110107`` Import for a message an adapter stored, ``110114`` User Authentication
  (subtype ``110122`` Login) for a token request; ``subtype`` the restful-interaction code
  (``read``, ``search-type``, ``create``, ``transaction``, ``operation``, ...); ``action``
  C/R/U/D/E; ``outcome`` 0/4/8/12 from the HTTP status.
- ``agent``: the client (``who.identifier`` its client id, ``who.reference`` a facility's
  Organization, ``role`` its role, ``network`` the address it came from), ``requestor`` true;
  ``anonymous`` with auth off.
- ``source.observer``: this server.
- ``entity``: the records the interaction touched, as references and ids only (``what``,
  ``type``, ``role``), and the Patient whose record it is (role ``1``) when that is known
  cheaply: the resource itself if a Patient, else its ``subject``/``patient`` reference.

Never a name, an identifier value, a search's query or a body: an AuditEvent is itself kept
for years and read by administrators.

This module builds the events and keeps the per-request context (a contextvar the API layer
sets); :class:`Trail` collects what one unit of work wrote, and ``Writer.finish`` stores its
event in that unit's transaction. Buffered events (reads) are stored by
:mod:`fhirhub.services.audit_buffer`.
"""

from __future__ import annotations

import functools
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from fhirhub.model.instant import to_instant
from fhirhub.model.json import loads
from fhirhub.model.resource_types import is_resource_type, is_valid_id
from fhirhub.search.indexing import index_rows

TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_BASE = "https://fhirhub.baubaukota.go.id"
CLIENT_SYSTEM = f"{_BASE}/client"  # a registered OAuth client's id
SOURCE_SYSTEM = f"{_BASE}/source"  # an ingest source (adapter) name
INBOX_SYSTEM = f"{_BASE}/inbox"  # an inbox message's id
ROLE_SYSTEM = f"{_BASE}/CodeSystem/client-role"
REQUEST_ID = f"{_BASE}/StructureDefinition/request-id"
ANONYMOUS = "anonymous"

_REST = {"system": TYPE_SYSTEM, "code": "rest", "display": "RESTful Operation"}
_IMPORT = {"system": DCM, "code": "110107", "display": "Import"}
_AUTHENTICATION = {"system": DCM, "code": "110114", "display": "User Authentication"}
_LOGIN = {"system": DCM, "code": "110122", "display": "Login"}

#: interaction -> (type, action); the subtype is the interaction's restful-interaction code.
KINDS: dict[str, tuple[dict[str, str], str]] = {
    "read": (_REST, "R"),
    "vread": (_REST, "R"),
    "history-instance": (_REST, "R"),
    "history-type": (_REST, "R"),
    "history-system": (_REST, "R"),
    "search": (_REST, "E"),
    "search-type": (_REST, "E"),
    "search-system": (_REST, "E"),
    "create": (_REST, "C"),
    "update": (_REST, "U"),
    "patch": (_REST, "U"),
    "delete": (_REST, "D"),
    "transaction": (_REST, "E"),
    "batch": (_REST, "E"),
    "operation": (_REST, "E"),
    "ingest": (_IMPORT, "C"),
    "token": (_AUTHENTICATION, "E"),
}
_METHOD_KIND = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Where a resource names the Patient whose record it is (the cheap cases; a compartment's full
# definition is the search registry's business).
_PATIENT_ELEMENTS = ("subject", "patient", "beneficiary")
MAX_ENTITIES = 10_000  # one transaction of more entries is audited by its first ones


def outcome_of(status: int) -> str:
    """AuditEvent.outcome from an HTTP status: 0 success, 4 the client's failure, 8 the
    server's, 12 the server unavailable (a timeout, the database gone)."""
    if status < 400:
        return "0"
    if status < 500:
        return "4"
    return "12" if status in (503, 504) else "8"


@dataclass(frozen=True)
class Agent:
    """Who: a client (``client_id``, ``role``, a facility's ``organization``), or a source
    whose message a worker stored (``source``, with the sender Organization)."""

    client_id: str | None = None
    role: str | None = None
    organization: str | None = None
    source: str | None = None

    def to_fhir(self, address: str | None) -> dict[str, Any]:
        who: dict[str, Any] = {}
        if self.organization and self.organization.startswith("Organization/"):
            who["reference"] = self.organization
        if self.source and not self.client_id:
            who["identifier"] = {"system": SOURCE_SYSTEM, "value": self.source}
            who["display"] = f"source {self.source}"
        else:
            client = self.client_id or ANONYMOUS
            who["identifier"] = {"system": CLIENT_SYSTEM, "value": client}
            who["display"] = client
        # Each element costs index rows on every stored event (every read): the client id is
        # in who (agent:identifier), not also in altId and name.
        agent: dict[str, Any] = {"who": who}
        if self.role:
            agent["role"] = [{"coding": [{"system": ROLE_SYSTEM, "code": self.role}]}]
        agent["requestor"] = True
        if address:
            agent["network"] = {"address": address, "type": "2"}  # IP address
        return agent


ANONYMOUS_AGENT = Agent()


@functools.lru_cache(maxsize=4096)
def _agent(agent: Agent, address: str | None) -> dict[str, Any]:
    """The same client from the same address is the same element (shared, never changed)."""
    return agent.to_fhir(address)


@dataclass(frozen=True)
class Entity:
    """What: a reference (``Type/id`` or ``Type/id/_history/n``), its resource type and its
    object-role code; or an identifier (an inbox message) or a name (a non-FHIR route)."""

    reference: str | None = None
    res_type: str | None = None
    role: str = "4"  # Domain Resource
    identifier: tuple[str, str] | None = None
    name: str | None = None
    detail: tuple[tuple[str, str], ...] = ()  # (type, value): a grouped read's request id, time

    def to_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.reference:
            out["what"] = {"reference": self.reference}
        elif self.identifier:
            out["what"] = {
                "identifier": {"system": self.identifier[0], "value": self.identifier[1]}
            }
        elif self.res_type:
            out["what"] = {"type": self.res_type}
        if not self.reference:  # a reference says its type itself
            if self.res_type:
                out["type"] = {"system": RESOURCE_TYPES, "code": self.res_type}
            else:
                out["type"] = {"system": ENTITY_TYPE, "code": "2", "display": "System Object"}
        out["role"] = {"system": OBJECT_ROLE, "code": self.role}
        if self.name:
            out["name"] = self.name
        if self.detail:
            out["detail"] = [{"type": t, "valueString": v} for t, v in self.detail]
        return out


PATIENT_ROLE = "1"  # DICOM object role: the Patient


def patient_entity(patient_id: str) -> Entity:
    return Entity(f"Patient/{patient_id}", "Patient", role=PATIENT_ROLE)


def patient_of(res_type: str, res_id: str, resource: dict[str, Any] | None) -> str | None:
    """The id of the Patient whose record this is, when the resource says so directly."""
    if res_type == "Patient":
        return res_id
    if not isinstance(resource, dict):
        return None
    for name in _PATIENT_ELEMENTS:
        ref = resource.get(name)
        if isinstance(ref, dict):
            value = ref.get("reference")
            if isinstance(value, str) and value.startswith("Patient/"):
                found = value[len("Patient/") :].split("/", 1)[0]
                return found or None
    return None


def patients_in_query(res_type: str | None, query: str) -> list[str]:
    """The Patients a search names directly (``patient=``, ``subject=Patient/x``, a Patient
    search's ``_id``): ids only, never another value of the query."""
    out: list[str] = []
    for name, value in parse_qsl(query, keep_blank_values=False):
        base = name.split(":", 1)[0]
        for v in value.split(","):
            v = v.strip()
            direct = base == "patient" or (base == "_id" and res_type == "Patient")
            subject = base == "subject" and (v.startswith("Patient/") or name == "subject:Patient")
            if direct or subject:
                out.append(v.removeprefix("Patient/"))
    return [p for p in dict.fromkeys(out) if p and "/" not in p and len(p) <= 64][:20]


_OBSERVER = {"display": f"fhirhub at {socket.gethostname()}"}


def event(
    kind: str,
    *,
    recorded_us: int,
    outcome: str = "0",
    agent: Agent = ANONYMOUS_AGENT,
    address: str | None = None,
    request_id: str | None = None,
    entities: Iterable[Entity] = (),
    status: int | None = None,
    period: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """An AuditEvent resource (with a new id)."""
    event_type, action = KINDS.get(kind, (_REST, "E"))
    out: dict[str, Any] = {"resourceType": "AuditEvent", "id": str(uuid.uuid4())}
    if request_id:
        out["extension"] = [{"url": REQUEST_ID, "valueString": request_id}]
    out["type"] = event_type
    if kind == "token":
        out["subtype"] = [_LOGIN]
    else:  # an ingest stored a transaction Bundle
        code = "transaction" if kind == "ingest" else kind
        out["subtype"] = [{"system": INTERACTION_SYSTEM, "code": code, "display": code}]
    out["action"] = action
    if period is not None:
        out["period"] = {"start": to_instant(period[0]), "end": to_instant(period[1])}
    out["recorded"] = to_instant(recorded_us)
    out["outcome"] = outcome
    if status is not None:
        out["outcomeDesc"] = f"HTTP {status}"
    out["agent"] = [_agent(agent, address)]
    out["source"] = {
        "observer": _OBSERVER,
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    seen: set[Entity] = set()
    listed = []
    for e in entities:
        if e not in seen:
            seen.add(e)
            listed.append(e.to_fhir())
            if len(listed) >= MAX_ENTITIES:
                break
    if listed:
        out["entity"] = listed
    return out


# --- the context of one request or one unit of work ---------------------------------------


@dataclass
class Context:
    """What the edge knows of the interaction under way: who (read when the event is made:
    the token is verified after the context is set), from where, and its request id.
    ``recorded`` is set once an AuditEvent of it committed with its write."""

    agent: Callable[[], Agent] = lambda: ANONYMOUS_AGENT
    address: str | None = None
    request_id: str | None = None
    method: str | None = None
    path: str | None = None
    recorded: bool = False
    notes: dict[str, Any] = field(default_factory=dict)  # what a route adds (a read's body)


CURRENT: ContextVar[Context | None] = ContextVar("fhirhub_audit_context", default=None)


def current() -> Context | None:
    return CURRENT.get()


@contextmanager
def bound(context: Context | None) -> Iterator[Context | None]:
    """``context`` is current for the block (a worker's unit of work, a test)."""
    token = CURRENT.set(context)
    try:
        yield context
    finally:
        CURRENT.reset(token)


def mark_recorded() -> None:
    """The current interaction's AuditEvent committed with its write: nothing to buffer."""
    context = CURRENT.get()
    if context is not None:
        context.recorded = True


def note(key: str, value: Any) -> None:
    """Something the route knows for the buffered event (a read's stored JSON, parsed off the
    request path for its patient)."""
    context = CURRENT.get()
    if context is not None:
        context.notes[key] = value


def kind_of_request(method: str, path: str) -> tuple[str, list[Entity]]:
    """The interaction a request is, by its method and path (never its query or body), and
    the entities the path names."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["auth"]:
        return "token", []
    if parts[:1] != ["fhir"]:
        kind = "read" if method in ("GET", "HEAD") else "operation"
        if parts[:1] == ["ingest"] and method == "POST":
            kind = "ingest"
        return kind, [Entity(name="/" + "/".join(parts)[:200])]
    rest = parts[1:]
    if any(p.startswith("$") for p in rest):
        entities = _path_entities(rest[:2]) if len(rest) >= 3 else []
        return "operation", entities
    get = method in ("GET", "HEAD")
    if not rest:
        return ("search-system" if get else "transaction"), []
    if rest[0] == "_history":
        return "history-system", []
    res_type = rest[0]
    if len(rest) == 1:
        if get:
            return "search-type", [Entity(res_type=res_type, role="24")]
        return _METHOD_KIND.get(method, "operation"), [Entity(res_type=res_type)]
    if rest[1] == "_search":
        return "search-type", [Entity(res_type=res_type, role="24")]
    if rest[1] == "_history":
        return "history-type", [Entity(res_type=res_type, role="24")]
    target = _path_entities(rest[:2])
    if len(rest) == 2:
        return ("read" if get else _METHOD_KIND.get(method, "operation")), target
    if rest[2] == "_history":
        if len(rest) == 3:
            return "history-instance", target
        version = rest[3]
        ref = f"{res_type}/{rest[1]}/_history/{version}"
        return "vread", [Entity(ref, res_type), *target[1:]]
    return "search", [*target, Entity(res_type=rest[2] if rest[2] != "*" else None, role="24")]


def _path_entities(rest: list[str]) -> list[Entity]:
    if len(rest) < 2:
        return []
    res_type, res_id = rest[0], rest[1][:64]
    if res_type == "Patient":  # the resource is the Patient whose record it is
        return [patient_entity(res_id)]
    return [Entity(f"{res_type}/{res_id}", res_type)]


# --- what one unit of work wrote --------------------------------------------------------


class Trail:
    """The writes of one unit of work, for its one AuditEvent (``Writer.finish``)."""

    def __init__(self, context: Context, kind: str | None = None) -> None:
        self.context = context
        self.kind = kind  # fixed (ingest), else set by a transaction or taken from the writes
        self.entities: list[Entity] = []
        self.internal: list[Entity] = []  # the server's own writes (the patient index's)
        self.methods: set[str] = set()
        self.extra: list[Entity] = []  # added by the edge (an inbox message)

    def wrote(
        self,
        res_type: str,
        res_id: str,
        version: int,
        method: str,
        resource: Any = None,
        *,
        internal: bool = False,
    ) -> None:
        reference = f"{res_type}/{res_id}/_history/{version}" if version else f"{res_type}/{res_id}"
        if internal:
            if len(self.internal) < MAX_ENTITIES:
                self.internal.append(Entity(reference, res_type))
            return
        if len(self.entities) >= MAX_ENTITIES:
            return
        self.methods.add(method)
        self.entities.append(Entity(reference, res_type))
        if isinstance(resource, str):  # a deleted resource's last stored JSON
            patient = patient_from_content(res_type, res_id, resource)
        else:
            patient = patient_of(res_type, res_id, resource)
        if patient is not None:
            self.entities.append(patient_entity(patient))

    def forget(self) -> None:
        """Drop what was noted (its writes were rolled back)."""
        self.entities.clear()
        self.internal.clear()
        self.methods.clear()

    def interaction(self) -> str:
        if self.kind:
            return self.kind
        if len(self.methods) == 1:
            return _METHOD_KIND.get(next(iter(self.methods)), "operation")
        if self.context.method and self.context.path:
            return kind_of_request(self.context.method, self.context.path)[0]
        return "operation"

    def events(self, recorded_us: int, *, status: int | None = None) -> list[dict[str, Any]]:
        """The AuditEvents of the unit of work: one (a trail of several units says otherwise)."""
        return [self.event(recorded_us, status=status)]

    def event(self, recorded_us: int, *, status: int | None = None) -> dict[str, Any]:
        ctx = self.context
        entities = [*self.extra, *(self.entities or self.internal)]
        if not entities and ctx.method and ctx.path:
            entities.extend(kind_of_request(ctx.method, ctx.path)[1])
        return event(
            self.interaction(),
            recorded_us=recorded_us,
            outcome=outcome_of(status or 200),
            agent=ctx.agent(),
            address=ctx.address,
            request_id=ctx.request_id,
            entities=entities,
            status=status,
        )


def trail() -> Trail | None:
    """A trail for a unit of work of the current interaction (None outside one)."""
    context = CURRENT.get()
    return Trail(context) if context is not None else None


def patient_from_content(res_type: str, res_id: str, content: str | None) -> str | None:
    """:func:`patient_of` a stored JSON text (parsed here, off the request path)."""
    if res_type == "Patient":
        return res_id
    if not content:
        return None
    try:
        return patient_of(res_type, res_id, loads(content))
    except ValueError:
        return None


# --- search index rows, cheaply ---------------------------------------------------------

# The elements that repeat from one event to the next (one client reading: the same agent, type,
# outcome); the index rows of an event are those of this part (computed once per distinct part)
# and those of the rest (recorded, entity). The two share no search parameter, so together they
# are the rows ``index_rows`` gives for the whole event (a test keeps them equal).
_REPEATED = ("type", "subtype", "action", "outcome", "outcomeDesc", "agent", "source")

Rows = dict[str, list[dict[str, Any]]]


@functools.lru_cache(maxsize=2048)
def _rows_of_repeated(key: bytes) -> Rows:
    return index_rows(orjson.loads(key))


def index_of(event: dict[str, Any]) -> Rows:
    """``index_rows(event)`` for an AuditEvent built here, at a fraction of its cost."""
    repeated: dict[str, Any] = {"resourceType": "AuditEvent"}
    rest: dict[str, Any] = {"resourceType": "AuditEvent"}
    for key, value in event.items():
        if key in _REPEATED:
            repeated[key] = value
        elif key != "resourceType":
            rest[key] = value
    entities = rest.pop("entity", None)
    out: Rows = {
        t: [dict(r) for r in rows] for t, rows in _rows_of_repeated(orjson.dumps(repeated)).items()
    }
    seen = {t: {tuple(r.values()) for r in rows} for t, rows in out.items()}

    def add(table: str, row: dict[str, Any]) -> None:
        key = tuple(row.values())
        known = seen.setdefault(table, set())
        if key not in known:
            known.add(key)
            out.setdefault(table, []).append(row)

    for table, rows in index_rows(rest).items():
        for row in rows:
            add(table, row)
    for entity in entities if isinstance(entities, list) else ():
        for table, row in _entity_rows(entity):
            add(table, row)
    return out


_PLACEHOLDER = "fhirhub-audit-entity-id"


def _entity_rows(entity: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The index rows one entity adds (an event's rows are those of its parts: no AuditEvent
    search parameter looks at two entities at once). An entity that names a resource by a
    plain ``Type/id`` reference (a grouped read has one per read) takes the rows of its shape,
    computed once per shape and type, with its id put in."""
    what = entity.get("what") if isinstance(entity, dict) else None
    ref = what.get("reference") if isinstance(what, dict) and len(what) == 1 else None
    res_type, _, res_id = ref.partition("/") if isinstance(ref, str) else ("", "", "")
    if not (is_resource_type(res_type) and is_valid_id(res_id)):
        for table, rows in index_rows({"resourceType": "AuditEvent", "entity": [entity]}).items():
            for row in rows:
                yield table, row
        return
    shape = {k: v for k, v in entity.items() if k not in ("what", "detail")}
    for table, row in _rows_of_entity_shape(orjson.dumps(shape), res_type):
        yield table, {k: _with_id(v, res_id) for k, v in row.items()}


def _with_id(value: Any, res_id: str) -> Any:
    return value.replace(_PLACEHOLDER, res_id) if type(value) is str else value


@functools.lru_cache(maxsize=256)
def _rows_of_entity_shape(shape: bytes, res_type: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    entity = {**orjson.loads(shape), "what": {"reference": f"{res_type}/{_PLACEHOLDER}"}}
    rows = index_rows({"resourceType": "AuditEvent", "entity": [entity]})
    return tuple((table, row) for table, table_rows in rows.items() for row in table_rows)
