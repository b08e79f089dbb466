"""The one write path. REST create/update/patch/delete, transaction and batch entries, and
every adapter end here, so versioning, If-Match, validation and indexing happen once.

http://hl7.org/fhir/R4/http.html#create, #update, #patch, #delete, #cond-update
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jsonpatch
from sqlalchemy import Connection, Table

from fhirhub.config import get_settings
from fhirhub.errors import FhirError, Issue, bad_request, precondition_failed
from fhirhub.model.instant import now_us, to_instant
from fhirhub.model.json import dumps_str, loads
from fhirhub.model.resource_types import is_resource_type, is_valid_id
from fhirhub.model.validation import validate_resource
from fhirhub.mpi.store import forget_features
from fhirhub.search import find_matches_many
from fhirhub.search.access import Access, forbidden
from fhirhub.search.indexing import index_rows
from fhirhub.search.query import RESULT_PARAMS
from fhirhub.services import audit
from fhirhub.services.patient_index import PatientIndex
from fhirhub.storage.repository import ResourceRepository, StoredVersion, Write

Key = tuple[str, str]

# Every resource a transaction stores has the same lastUpdated: format it once, not per entry.
instant = functools.lru_cache(maxsize=64)(to_instant)
_ETAG = re.compile(r'^(?:W/)?"?([0-9]{1,9})"?$')  # a version fits an INTEGER column
FLUSH_EVERY = 500


@dataclass
class Result:
    """What one write did: the HTTP status and the resource version it left current."""

    status: int
    res_type: str
    res_id: str
    version: int
    last_updated: int
    resource: dict[str, Any] | None = None  # the stored body; None for a delete
    content: str | None = None  # the same, as stored JSON text
    issues: list[Issue] = field(default_factory=list)
    changed: bool = True  # False when the write matched what was already stored

    @property
    def location(self) -> str:
        return f"{self.res_type}/{self.res_id}/_history/{self.version}"

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


def parse_etag(value: str, header: str = "If-Match") -> int:
    match = _ETAG.match(value.strip())
    if not match:
        raise bad_request(f"{header}: '{value}' is not a version ETag such as W/\"3\"", header)
    return int(match.group(1))


def normalise_query(query: str) -> str:
    """A canonical form of a conditional query, used as a lock key."""
    return urlencode(sorted(parse_qsl(query, keep_blank_values=True)))


def require_criteria(res_type: str, query: str, what: str, expression: str | None = None) -> None:
    """Refuse a conditional interaction whose query selects nothing: with only result
    parameters (``_count``, ``_sort``, ``_cursor``, ...), blank values or nothing at all it would
    match every resource of the type. http://hl7.org/fhir/R4/http.html#cond-update"""
    params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if any(v != "" and k.split(":")[0] not in RESULT_PARAMS for k, v in params):
        return
    raise bad_request(
        f"{what} '{res_type}?{query.lstrip('?')}' has no search criteria: it would match every "
        f"{res_type}",
        expression,
    )


def check_type(res_type: str) -> None:
    if not is_resource_type(res_type):
        raise FhirError.single(404, "not-supported", f"Unknown resource type '{res_type}'")


class Writer:
    """Writes of one database transaction, staged and stored in batches."""

    def __init__(
        self,
        repo: ResourceRepository,
        *,
        now: int | None = None,
        patient_index: PatientIndex | bool | None = True,
        trail: audit.Trail | bool | None = True,
    ) -> None:
        self.repo = repo
        self.now = now if now is not None else now_us()
        self._pending: list[Write] = []
        self._rows: list[tuple[Table, list[dict[str, Any]]]] = []  # others' rows, stored with them
        self._heads: dict[Key, StoredVersion | None] = {}
        self.unchanged = 0  # writes that matched what was stored (counted for load reports)
        if patient_index is True:  # the default: on unless the settings turn it off
            patient_index = _patient_index()
        self.patient_index = patient_index or None
        # A facility client's writes (issue 13; set by the API and the ingest pipeline): what
        # its conditions match and which stored records it may change (its own), and the
        # stamp its resources get (fhirhub.auth.binding.stamp). None for every other writer.
        self.access: Access | None = None
        self.stamp: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        # The AuditEvent of this unit of work (services/audit.py): by default that of the
        # interaction under way, None outside one (and when audit is off).
        self.trail = audit.trail() if trail is True else trail or None
        self._audit_staged: list[tuple[str, str, int, str, Any, bool]] = []  # until flushed
        self._audited = False

    @staticmethod
    def default_index() -> PatientIndex | None:
        """The patient index every Writer uses unless told otherwise (None when it is off)."""
        return _patient_index()

    @property
    def conn(self) -> Connection:
        return self.repo.conn

    # --- state -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Store what is staged. The patient index first places the staged Patients: the
        Persons, Tasks and Provenance it stages are stored with them, in one round of writes
        (a second round of its own cost a Bundle about 3 ms more)."""
        self._flush()

    def _flush(self, with_audit: bool = False, status: int | None = None) -> None:
        """:meth:`flush`; ``with_audit``: the unit of work's AuditEvent (saying ``status``)
        goes with its last round of writes (:meth:`finish`)."""
        while self._pending or self._rows:
            batch, self._pending = self._pending, []
            patients = [w for w in batch if w.res_type == "Patient"]
            if patients and self.patient_index is not None:
                self.patient_index.on_patients(self, patients)
                batch, self._pending = batch + self._pending, []
            elif patients:  # the index is off: what it stored of these records is stale now
                forget_features(self.conn, {w.res_id for w in patients if w.version > 1})
            if with_audit and self.trail is not None and not self._audited:
                self._stage_audit_event(status)
                batch, self._pending = batch + self._pending, []
            rows, self._rows = self._rows, []
            self.repo.apply(batch, rows)
            self._audit_flushed()
            for w in batch:  # the staged pks are now known
                head = self._heads.get((w.res_type, w.res_id))
                if head is not None and head.pk == 0 and w.pk is not None:
                    self._heads[(w.res_type, w.res_id)] = _as_head(w)
        self._audit_flushed()

    def stage_rows(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Rows of another table (the patient index's) inserted with the next flush's writes."""
        self._rows.append((table, rows))

    def finish(self, status: int | None = None) -> None:
        """Store what is staged and the AuditEvent of this unit of work (once; ``status``: the
        HTTP status it reports, when the caller knows it), in the same round of writes when
        something is staged (one round trip less a write): call it just before the commit,
        so that the write and its audit commit together or not at all."""
        self._flush(with_audit=True, status=status)
        if self.trail is not None and not self._audited:  # everything was stored before
            self._stage_audit_event(status)
            self.flush()

    def _stage_audit_event(self, status: int | None = None) -> None:
        """Stage the AuditEvent naming every write of this unit of work, the staged ones too
        (they commit with it or not at all)."""
        self._audited = True
        self._audit_flushed()
        assert self.trail is not None
        for event in self.trail.events(now_us(), status=status):
            self.put_internal(event, new=True, index=audit.index_of(event))

    def note_interaction(self, kind: str) -> None:
        """What the unit of work is (``transaction``, ``batch``), unless its edge said."""
        if self.trail is not None and self.trail.kind is None:
            self.trail.kind = kind

    def _audit_flushed(self) -> None:
        if self.trail is not None and self._audit_staged:
            staged, self._audit_staged = self._audit_staged, []
            for res_type, res_id, version, method, resource, internal in staged:
                self.trail.wrote(res_type, res_id, version, method, resource, internal=internal)

    def prefetch(self, keys: list[Key]) -> None:
        """Read (and lock) the current versions of resources about to be written."""
        wanted = [k for k in keys if k not in self._heads]
        found = self.repo.heads(wanted)
        for key in wanted:
            self._heads[key] = found.get(key)

    def head(self, res_type: str, res_id: str) -> StoredVersion | None:
        key = (res_type, res_id)
        if key not in self._heads:
            self._heads[key] = self.repo.current(res_type, res_id, for_update=True)
        return self._heads[key]

    def matches(
        self,
        res_type: str,
        query: str,
        *,
        lock: bool,
        what: str = "The condition",
        expression: str | None = None,
    ) -> list[tuple[int, str]]:
        """Current resources matching a conditional query, seeing this transaction's writes."""
        found = self.matches_many([(res_type, query, expression)], lock=lock, what=what)[0]
        if isinstance(found, FhirError):
            raise found
        return found

    def matches_many(
        self,
        conditions: Sequence[tuple[str, str, str | None]],
        *,
        lock: bool,
        what: str = "The condition",
    ) -> list[list[tuple[int, str]] | FhirError]:
        """:meth:`matches` of each (type, query, expression) of ``conditions``, all locked in
        one statement and searched in one: each its matches, or the error saying why it
        cannot be searched (raised by the caller, which knows where the condition came from)."""
        if not conditions:
            return []
        out: list[list[tuple[int, str]] | FhirError] = []
        wanted: list[int] = []
        for i, (res_type, query, expression) in enumerate(conditions):
            try:
                require_criteria(res_type, query, what, expression)
            except FhirError as err:
                out.append(err)
                continue
            out.append([])
            wanted.append(i)
        if lock:
            self.lock_conditions(conditions[i][:2] for i in wanted)
        self.flush()
        found = find_matches_many(self.repo.conn, [conditions[i][:2] for i in wanted], self.access)
        for i, matched in zip(wanted, found, strict=True):
            out[i] = matched
        return out

    def lock_conditions(self, conditions: Iterable[tuple[str, str]]) -> None:
        """Lock each (type, query) condition until the commit, all in one statement, in one
        order whatever the order given: two writers of the same conditions never deadlock."""
        self.repo.lock_many(f"{res_type}?{normalise_query(q)}" for res_type, q in conditions)

    # --- interactions ------------------------------------------------------------------------

    def create(
        self, resource: dict[str, Any], *, if_none_exist: str | None = None, validated: bool = False
    ) -> Result:
        res_type = _resource_type(resource)
        self._check_writable(res_type)
        if self.stamp is not None:
            resource = self.stamp(resource)
        if not validated:
            validate_resource(resource)
        if if_none_exist is not None:
            found = self.matches(
                res_type, if_none_exist, lock=True, what="If-None-Exist", expression="If-None-Exist"
            )
            if len(found) > 1:
                raise precondition_failed(
                    f"If-None-Exist '{if_none_exist}' matches {len(found)} {res_type} resources"
                )
            if found:
                return self.existing(res_type, found[0][1])
        return self._public(res_type, str(uuid.uuid4()), resource, None, "POST")

    def update(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
        validated: bool = False,
    ) -> Result:
        check_type(res_type)
        self._check_writable(res_type)
        _check_body(resource, res_type, res_id)
        if self.stamp is not None:
            resource = self.stamp(resource)
        if not validated:
            validate_resource(resource)
        prev = self.head(res_type, res_id)
        self._check_own(prev, res_type, res_id)
        _check_if_match(prev, if_match, f"{res_type}/{res_id}")
        if prev is not None and not prev.deleted and _same_content(prev, resource):
            return self._existing(res_type, res_id, prev, "PUT")
        return self._public(res_type, res_id, resource, prev, "PUT")

    def conditional_update(
        self,
        res_type: str,
        query: str,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
        validated: bool = False,
    ) -> Result:
        check_type(res_type)
        self._check_writable(res_type)
        if not validated:
            validate_resource(resource)
        res_id = self.conditional_target(res_type, query, resource)
        resource = {**resource, "id": res_id}
        return self.update(res_type, res_id, resource, if_match=if_match, validated=True)

    def conditional_target(self, res_type: str, query: str, resource: dict[str, Any]) -> str:
        """The id a conditional update writes to: the one match, else the body's id (if no
        other resource has it), else a new id. http://hl7.org/fhir/R4/http.html#cond-update"""
        found = self.matches(res_type, query, lock=True, what="Conditional update")
        if len(found) > 1:
            raise precondition_failed(
                f"Conditional update '{res_type}?{query}' matches {len(found)} resources"
            )
        body_id = resource.get("id")
        if found:
            res_id = found[0][1]
            if body_id is not None and body_id != res_id:
                raise bad_request(
                    f"The body's id '{body_id}' is not that of the match ({res_id})",
                    f"{res_type}.id",
                )
            return res_id
        if not isinstance(body_id, str):
            return str(uuid.uuid4())
        existing = self.head(res_type, body_id)
        if existing is not None and not existing.deleted:
            raise FhirError.single(
                409,
                "conflict",
                f"No {res_type} matches '{query}', but {res_type}/{body_id} exists",
                f"{res_type}.id",
            )
        return body_id

    def patch(
        self, res_type: str, res_id: str, operations: Any, *, if_match: str | None = None
    ) -> Result:
        check_type(res_type)
        self._check_writable(res_type)
        prev = self.head(res_type, res_id)
        _check_exists(prev, res_type, res_id)
        assert prev is not None and prev.content is not None
        self._check_own(prev, res_type, res_id)
        _check_if_match(prev, if_match, f"{res_type}/{res_id}")
        patched = _apply_patch(loads(prev.content), operations)
        if self.stamp is not None and isinstance(patched, dict):
            patched = self.stamp(patched)
        if not isinstance(patched, dict) or patched.get("resourceType") != res_type:
            raise FhirError.single(422, "processing", "A patch may not change resourceType")
        if patched.get("id") != res_id:
            raise FhirError.single(422, "processing", "A patch may not change id")
        validate_resource(patched)
        if _same_content(prev, patched):
            return self._existing(res_type, res_id, prev, "PATCH")
        return self._public(res_type, res_id, patched, prev, "PATCH")

    def delete(self, res_type: str, res_id: str) -> Result:
        check_type(res_type)
        self._check_writable(res_type)
        prev = self.head(res_type, res_id)
        if prev is None or prev.deleted:  # deleting again changes nothing
            version = prev.version if prev else 0
            last_updated = prev.last_updated if prev else 0
            self.unchanged += 1
            self._audit(res_type, res_id, version, "DELETE", None)
            return Result(204, res_type, res_id, version, last_updated, changed=False)
        self._check_own(prev, res_type, res_id)
        result = self._store(res_type, res_id, None, prev, "DELETE")
        self._audit(res_type, res_id, result.version, "DELETE", prev.content if prev else None)
        return result

    def conditional_delete(self, res_type: str, query: str) -> Result:
        check_type(res_type)
        self._check_writable(res_type)
        found = self.matches(res_type, query, lock=True, what="Conditional delete")
        if len(found) > 1:
            raise precondition_failed(
                f"Conditional delete '{res_type}?{query}' matches {len(found)} resources"
            )
        if not found:
            self.unchanged += 1
            return Result(204, res_type, "", 0, 0, changed=False)
        return self.delete(res_type, found[0][1])

    def store_new(self, resource: dict[str, Any]) -> Result:
        """Create a validated resource under the id it already carries (assigned by a
        transaction before its references were rewritten)."""
        self._check_writable(resource["resourceType"])
        if self.stamp is not None:
            resource = self.stamp(resource)
        return self._public(resource["resourceType"], resource["id"], resource, None, "POST")

    def existing(self, res_type: str, res_id: str) -> Result:
        """The current version of a resource, as the result of a write that changed nothing."""
        return self._existing(res_type, res_id)

    # --- the server's own writes (the patient index's Persons, Tasks and Provenance) ----------

    def put_internal(self, resource: dict[str, Any], new: bool = False, index: Any = None) -> int:
        """Store a resource the server itself writes, under its id; returns its version.
        ``new``: the id was just made (a UUID), so there is no current version to look up;
        ``index``: its search index rows, when the caller has them (the audit trail's)."""
        res_type, res_id = resource["resourceType"], resource["id"]
        if new:
            self._heads.setdefault((res_type, res_id), None)
        prev = self.head(res_type, res_id)
        if prev is not None and not prev.deleted and _same_content(prev, resource):
            return prev.version
        method = "POST" if prev is None or prev.deleted else "PUT"
        version = self._store(res_type, res_id, resource, prev, method, index).version
        if res_type != "AuditEvent":
            self._audit(res_type, res_id, version, method, resource, internal=True)
        return version

    def delete_internal(self, res_type: str, res_id: str) -> int:
        prev = self.head(res_type, res_id)
        if prev is None or prev.deleted:
            return prev.version if prev else 0
        version = self._store(res_type, res_id, None, prev, "DELETE").version
        self._audit(res_type, res_id, version, "DELETE", None, internal=True)
        return version

    def current_body(self, res_type: str, res_id: str) -> dict[str, Any] | None:
        prev = self.head(res_type, res_id)
        if prev is None or prev.content is None:
            return None
        body: dict[str, Any] = loads(prev.content)
        return body

    def _check_writable(self, res_type: str) -> None:
        if res_type == "AuditEvent":
            raise FhirError.single(
                405,
                "not-supported",
                "AuditEvent resources are written by the server only, one for each interaction",
            )
        if res_type == "Person" and self.patient_index is not None:
            raise FhirError.single(
                405,
                "not-supported",
                "Person resources are written by the patient index only; a data steward links "
                "and unlinks records with Patient/$mpi-link and Patient/$mpi-unlink",
            )

    def _check_own(self, prev: StoredVersion | None, res_type: str, res_id: str) -> None:
        """A facility changes only its own records (403 otherwise); one written earlier in
        this transaction (not yet flushed) is its own."""
        if self.access is None or prev is None or prev.deleted or prev.pk == 0:
            return
        if not self.access.owns(self.repo.conn, res_type, res_id):
            raise forbidden(
                f"{res_type}/{res_id} is not a record of {self.access.organization}: "
                "a facility changes only its own records"
            )

    def forget_pending(self) -> None:
        """Drop staged writes and cached heads after their savepoint was rolled back."""
        self._pending.clear()
        self._rows.clear()
        self._heads.clear()
        self._audit_staged.clear()

    # --- internals ---------------------------------------------------------------------------

    def _public(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any] | None,
        prev: StoredVersion | None,
        method: str,
    ) -> Result:
        """:meth:`_store` for a client's interaction, which its AuditEvent names."""
        result = self._store(res_type, res_id, resource, prev, method)
        self._audit(res_type, res_id, result.version, method, resource)
        return result

    def _audit(
        self,
        res_type: str,
        res_id: str,
        version: int,
        method: str,
        resource: Any,
        internal: bool = False,
    ) -> None:
        """Note a resource this interaction wrote (or matched) for its AuditEvent; kept once
        flushed, dropped with a savepoint that is rolled back (a failed batch entry). The
        server's own writes (``internal``) are named only by an interaction that wrote
        nothing else (``$mpi-link``)."""
        if self.trail is not None:
            self._audit_staged.append((res_type, res_id, version, method, resource, internal))

    def _existing(
        self,
        res_type: str,
        res_id: str,
        head: StoredVersion | None = None,
        method: str = "POST",
    ) -> Result:
        head = head or self.head(res_type, res_id)
        assert head is not None and head.content is not None
        self.unchanged += 1
        body = loads(head.content)
        self._audit(res_type, res_id, head.version, method, body)
        return Result(
            200,
            res_type,
            res_id,
            head.version,
            head.last_updated,
            body,
            head.content,
            changed=False,
        )

    def _store(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any] | None,
        prev: StoredVersion | None,
        method: str,
        index: Any = None,
    ) -> Result:
        if prev is not None and prev.pk == 0:  # written earlier in this transaction, unflushed
            self.flush()
            prev = self._heads[(res_type, res_id)]
            assert prev is not None
        version = prev.version + 1 if prev else 1
        last_updated = max(self.now, prev.last_updated + 1) if prev else self.now
        content = None
        if resource is not None:
            resource = _with_identity(resource, res_id, version, last_updated)
            content = dumps_str(resource)
        write = Write(
            res_type=res_type,
            res_id=res_id,
            version=version,
            last_updated=last_updated,
            method=method,
            content=content,
            index=(index or index_rows(resource)) if resource is not None else None,
            pk=prev.pk if prev else None,
            body=resource,
        )
        self._pending.append(write)
        self._heads[(res_type, res_id)] = _as_head(write)
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()
        created = prev is None or prev.deleted
        status = 204 if resource is None else 201 if created else 200
        return Result(status, res_type, res_id, version, last_updated, resource, content)


@functools.cache
def _shared_index() -> PatientIndex:
    return PatientIndex()


def _patient_index() -> PatientIndex | None:
    return _shared_index() if get_settings().patient_index == "on" else None


def _as_head(w: Write) -> StoredVersion:
    # pk 0 marks a staged resource whose row (and so pk) does not exist until the next flush
    return StoredVersion(
        w.pk or 0, w.res_type, w.res_id, w.version, w.last_updated, w.deleted, w.content, w.method
    )


def _resource_type(resource: dict[str, Any]) -> str:
    res_type = resource.get("resourceType")
    if not isinstance(res_type, str):
        raise bad_request("resourceType is missing", "resourceType", code="required")
    check_type(res_type)
    return res_type


def _check_body(resource: dict[str, Any], res_type: str, res_id: str) -> None:
    if not is_valid_id(res_id):
        raise bad_request(f"'{res_id}' is not a valid resource id", f"{res_type}.id")
    if resource.get("resourceType") != res_type:
        raise bad_request(
            f"The body is a {resource.get('resourceType')}, not a {res_type}",
            "resourceType",
        )
    if resource.get("id") is None:
        raise bad_request("An update needs the resource id in the body", f"{res_type}.id")
    if resource.get("id") != res_id:
        raise bad_request(
            f"The body's id '{resource.get('id')}' differs from the URL's '{res_id}'",
            f"{res_type}.id",
        )


def _check_exists(prev: StoredVersion | None, res_type: str, res_id: str) -> None:
    if prev is None:
        raise FhirError.single(404, "not-found", f"{res_type}/{res_id} is not known")
    if prev.deleted:
        raise FhirError.single(410, "deleted", f"{res_type}/{res_id} was deleted")


def _check_if_match(prev: StoredVersion | None, if_match: str | None, what: str) -> None:
    if if_match is None:
        return
    wanted = parse_etag(if_match)
    current = prev.version if prev is not None and not prev.deleted else None
    if current != wanted:
        raise precondition_failed(
            f"{what}: If-Match wants version {wanted}, the current version is {current or 'none'}"
        )


def _same_content(prev: StoredVersion, resource: dict[str, Any]) -> bool:
    """True if ``resource`` says what the stored version says, meta's bookkeeping aside."""
    if prev.content is None:
        return False
    return _without_bookkeeping(loads(prev.content)) == _without_bookkeeping(resource)


def _without_bookkeeping(resource: dict[str, Any]) -> dict[str, Any]:
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        return resource
    meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
    out = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        out["meta"] = meta
    return out


def _with_identity(
    resource: dict[str, Any], res_id: str, version: int, last_updated: int
) -> dict[str, Any]:
    """The resource with its id and meta.versionId/lastUpdated, the client's key order kept."""
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(last_updated)
    out: dict[str, Any] = {"resourceType": resource["resourceType"], "id": res_id}
    if "meta" not in resource:
        out["meta"] = meta
    for key, value in resource.items():
        if key not in ("resourceType", "id"):
            out[key] = meta if key == "meta" else value
    return out


def _apply_patch(doc: Any, operations: Any) -> Any:
    """``operations`` applied one by one, so that a failure names its operation and path; the
    messages never quote the resource (jsonpatch's quote the whole document)."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise bad_request("Not a JSON Patch document: an array of operations", code="structure")
    for i, op in enumerate(operations):
        where = f"operation {i} ({str(op.get('op'))[:20]} {str(op.get('path'))[:200]})"
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except jsonpatch.InvalidJsonPatch:
            raise bad_request(
                f"JSON Patch {where} is not a valid operation (op, path, from, value)",
                code="structure",
            ) from None
        except jsonpatch.JsonPatchTestFailed:
            raise FhirError.single(
                422, "processing", f"JSON Patch {where} failed: the value there differs"
            ) from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
            missing = f"from {str(op.get('from'))[:200]}" if "from" in op else "its path"
            raise FhirError.single(
                422, "processing", f"JSON Patch {where} failed: nothing at {missing}"
            ) from None
        except (TypeError, ValueError, AttributeError):
            raise bad_request(f"JSON Patch {where} is not valid", code="structure") from None
    return doc
