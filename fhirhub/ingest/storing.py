"""What storing an inbox message writes, in the transaction the pipeline opened for it: its
canonical Bundle stamped with provenance (and, from an authenticated facility, with its
Organization), merged with a visit another channel described, written through the one write
path; a source's patient merges; and the message's AuditEvent."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

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
    writer = Writer(ResourceRepository(conn), trail=trail)
    as_facility(writer, bundle, message, mapped.sender)
    # A visit another channel described too is merged with it, not replaced (visits.py);
    # only for sources that share visits with another (their adapter ranks them).
    if visit_priority(message.source):
        visits.reconcile(writer, bundle, message.source, visit_priority)
    response = transaction.process(writer, bundle, base_url=base_url, get=lambda url: (400, None))
    for merge in mapped.merges:
        apply_merge(writer, merge, f"source {message.source}/{mapped.sender or message.sender}")
    writer.finish(status=200)  # with the message's AuditEvent, when it has a trail
    return response


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
