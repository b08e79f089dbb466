"""What storing an inbox message writes, in the transaction the pipeline opened for it: its
canonical Bundle stamped with provenance (and, from an authenticated facility, with its
Organization), merged with a visit another channel described, written through the one write
path; a source's patient merges; and the message's AuditEvent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fhirhub.auth import binding
from fhirhub.errors import FhirError
from fhirhub.ingest import adapters, provenance, visits
from fhirhub.ingest.adapters import Mapped, Merge, Message
from fhirhub.model.instant import now_us
from fhirhub.services import audit, transaction
from fhirhub.services.writes import Writer
from fhirhub.storage.repository import ResourceRepository


def store(
    conn: Any,
    mapped: Mapped,
    message: Message,
    checksum: str,
    trail: audit.Trail | None,
    base_url: str,
) -> dict[str, Any]:
    """Write ``mapped`` (the message's canonical Bundle) in ``conn``'s transaction, with the
    message's AuditEvent when ``trail`` is given (in the same round of writes); returns the
    transaction-response Bundle."""
    writer = Writer(ResourceRepository(conn), trail=trail)
    bundle = _prepared(writer, mapped, message, checksum)
    response = transaction.process(writer, bundle, base_url=base_url, get=lambda url: (400, None))
    for merge in mapped.merges:
        apply_merge(writer, merge, f"source {message.source}/{mapped.sender or message.sender}")
    writer.finish(status=200)  # with the message's AuditEvent, when it has a trail
    return response


def store_together(
    conn: Any,
    items: Sequence[tuple[Mapped, Message, str, audit.Trail | None]],
    base_url: str,
) -> list[dict[str, Any]]:
    """:func:`store` for several messages at once (``items``: mapped, message, checksum,
    trail), in ``conn``'s transaction: their Bundles are written as one, in one round of
    writes and one pass of the patient index, each message still with its own Provenance, its
    own AuditEvent and its own transaction-response (returned in the order of ``items``).

    Only for messages that :func:`claims` finds independent (no two name one resource, one
    identifier or one condition; the caller checks) and that share a sender and declare no
    merges: then writing them together stores what writing them one after the other would. A
    FhirError leaves the caller to roll back and store them one by one."""
    first_mapped, first, _, _ = items[0]
    trails = [trail for _, _, _, trail in items if trail is not None]
    routed = _Routed(trails) if len(trails) == len(items) else None  # else audit is off
    writer = Writer(ResourceRepository(conn), trail=routed)
    entries: list[Any] = []
    counts: list[int] = []
    for mapped, message, checksum, _ in items:
        assert not mapped.merges and message.sender == first.sender
        assert (mapped.sender, mapped.organization) == (
            first_mapped.sender,
            first_mapped.organization,
        )
        bundle = _prepared(writer, mapped, message, checksum)
        counts.append(len(bundle["entry"]))
        entries.extend(bundle["entry"])
    together = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = transaction.process(writer, together, base_url=base_url, get=lambda url: (400, None))
    responses, at = [], 0
    for i, n in enumerate(counts):
        mine = response["entry"][at : at + n]
        at += n
        responses.append({**response, "entry": mine})
        if routed is not None:
            for e in mine:
                location = str(e.get("response", {}).get("location", "")).split("/")
                if len(location) >= 2:
                    routed.owner[(location[0], location[1])] = i
    writer.finish(status=200)  # with each message's AuditEvent
    return responses


def _prepared(writer: Writer, mapped: Mapped, message: Message, checksum: str) -> dict[str, Any]:
    """The message's Bundle as it is written: stamped with its provenance and (from an
    authenticated facility) as the facility's own, its visits merged with those another channel
    described."""
    bundle = mapped.bundle
    provenance.stamp(
        bundle,
        message_id=message.id,
        source=message.source,
        sender=mapped.sender or message.sender,
        organization=mapped.organization,
        checksum=checksum,
        now=now_us(),
    )
    as_facility(writer, bundle, message, mapped.sender)
    # A visit another channel described too is merged with it, not replaced (visits.py);
    # only for sources that share visits with another (their adapter ranks them).
    if visit_priority(message.source):
        visits.reconcile(writer, bundle, message.source, visit_priority)
    return bundle


class _Routed(audit.Trail):
    """The trail of writes made for several messages at once, which gives one AuditEvent per
    message: each write is named by the event of the message whose response names it
    (``owner``, known before the events are made); the patient index's own writes are named by
    none, as when a message that wrote something is stored alone."""

    def __init__(self, trails: Sequence[audit.Trail]) -> None:
        self.trails = trails  # one a message, in the order of their responses
        super().__init__(trails[0].context, kind="ingest")
        self.notes: list[tuple[str, str, int, str, Any, bool]] = []
        self.owner: dict[tuple[str, str], int] = {}  # resource -> the message that wrote it

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
        self.notes.append((res_type, res_id, version, method, resource, internal))

    def events(self, recorded_us: int, *, status: int | None = None) -> list[dict[str, Any]]:
        notes, self.notes = self.notes, []
        for res_type, res_id, version, method, resource, internal in notes:
            i = self.owner.get((res_type, res_id))
            if i is not None and not internal:
                self.trails[i].wrote(res_type, res_id, version, method, resource)
        return [trail.event(recorded_us, status=status) for trail in self.trails]

    def forget(self) -> None:
        self.notes.clear()


def claims(bundle: dict[str, Any]) -> frozenset[str] | None:
    """What a message's canonical Bundle names, for :func:`store_together`: its entries'
    fullUrls and target URLs, and every identifier value its resources carry or its conditions
    ask for (a condition matches a resource only through a value both name). None when it
    cannot be told: a condition on anything but identifiers, a read, an entry of another shape
    - such a message is stored alone."""
    out: set[str] = set()
    for entry in bundle.get("entry", []):
        if not isinstance(entry, dict):
            return None
        request, resource = entry.get("request"), entry.get("resource")
        if not isinstance(request, dict) or request.get("method") not in ("POST", "PUT"):
            return None
        url = str(request.get("url", ""))
        if request["method"] == "PUT":  # a POST's URL is its type: every message's
            out.add("url " + url)
        if entry.get("fullUrl"):
            out.add("url " + str(entry["fullUrl"]))
        for condition in (url.partition("?")[2], str(request.get("ifNoneExist") or "")):
            for name, value in parse_qsl(condition, keep_blank_values=True):
                if name != "identifier":
                    return None
                out.add("identifier " + value.rpartition("|")[2])
        if not isinstance(resource, dict):
            return None
        for identifier in resource.get("identifier") or ():
            if isinstance(identifier, dict) and identifier.get("value") is not None:
                out.add("identifier " + str(identifier["value"]))
    return frozenset(out)


def as_facility(writer: Writer, bundle: dict[str, Any], message: Message, code: str | None) -> None:
    """A message sent by an authenticated facility (its sender is its Organization): every
    entry is stamped as its own (``fhirhub.auth.binding.stamp``) and it may change only its
    own records, those stamped so and those it sent under its code before it had a client."""
    organization = message.sender
    if not binding.is_organization(organization):
        return
    assert organization is not None
    source = binding.facility_source(message.source, organization)
    legacy = [provenance.source_uri(message.source, code)] if code else []
    writer.access = binding.reads_of(organization, message.source, *legacy)
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            entry["resource"] = binding.stamp(resource, organization, source)


def visit_priority(source: str) -> int:
    """How much a source's word on a visit weighs against another channel's (its adapter's
    ``visit_priority``; 0 when it says none)."""
    try:
        return int(getattr(adapters.get(source), "visit_priority", 0))
    except FhirError:
        return 0


def store_audit(conn: Any, trail: audit.Trail, status: int) -> None:
    """Store the AuditEvent of a rejected message in the transaction that marks it so (a
    stored message's goes with its data, :func:`store`): a message whose audit cannot be
    stored is not marked either (it fails, and is retried)."""
    writer = Writer(ResourceRepository(conn), patient_index=False, trail=None)
    event = trail.event(now_us(), status=status)
    writer.put_internal(event, new=True, index=audit.index_of(event))
    writer.flush()


def apply_merge(writer: Writer, merge: Merge, who: str) -> None:
    """A source's merge (HL7 ADT^A40): the patient index puts both records in one Person as a
    decision (``level4``, never undone automatically), and the retired record is marked inactive
    and ``replaced-by`` the surviving one. A retired record fhirhub does not hold is refused
    (422, the message kept for a replay)."""
    found = {}
    for role, (system, value) in (("retired", merge.retired), ("surviving", merge.surviving)):
        query = urlencode({"identifier": f"{system}|{value}"})
        ids = [res_id for _, res_id in writer.matches("Patient", query, lock=False)]
        if len(ids) != 1:
            what = "no record" if not ids else f"{len(ids)} records"
            raise FhirError.single(
                422,
                "not-found" if not ids else "multiple-matches",
                f"The merge names {what} as its {role} patient",
                merge.where if role == "retired" else "PID-3",
            )
        found[role] = ids[0]
    retired, surviving = found["retired"], found["surviving"]
    if retired == surviving:
        return
    if writer.patient_index is not None:
        writer.patient_index.link(writer, retired, surviving, who, "merged by its source")
    body = writer.current_body("Patient", retired)
    if body is not None:
        body = {k: v for k, v in body.items() if k != "meta"}
        body["active"] = False
        link = {"other": {"reference": f"Patient/{surviving}"}, "type": "replaced-by"}
        if link not in body.get("link", []):
            body["link"] = [*body.get("link", []), link]
        writer.update("Patient", retired, body)
