"""Ids derived from a visit's identifier, one rule for every source.

A facility's visit is known by its SATUSEHAT encounter identifier
(``http://sys-ids.kemkes.go.id/encounter/<organization id>`` | the facility's registration id).
Every channel that carries visits (a Puskesmas's Bundles, the RSUD's HL7 v2 feed with PV1-19,
its SIMRS Khanza database with ``no_rawat``) stores the Encounter under the name-based UUID (v5)
of that identifier, and the visit's Conditions, Observations, Procedures, ... under UUIDs of the
identifier, their type and their order in the visit: a visit that arrives twice, or by two
channels, is stored once (PUT), and a corrected one becomes a new version of the same resources.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fhirhub.ingest.provenance import SOURCE_BASE
from fhirhub.model.systems import BPJS_CARD

if TYPE_CHECKING:
    from fhirhub.services.writes import Writer

ENCOUNTER_SYSTEM = "http://sys-ids.kemkes.go.id/encounter/"  # + SATUSEHAT organization id
_IDS = uuid.UUID("6a1b7c52-3f0e-4c1f-9d6e-2b8f0c5e7a11")  # the namespace of derived ids


def encounter_system(organization_id: str) -> str:
    """The visit identifier system of a facility, from its SATUSEHAT organization id."""
    return ENCOUNTER_SYSTEM + organization_id


def visit_key(system: str, value: str) -> str:
    return f"{system}|{value}"


def encounter_id(system: str, value: str) -> str:
    """The id of the Encounter whose visit identifier is ``system|value``."""
    return str(uuid.uuid5(_IDS, f"{visit_key(system, value)}|Encounter"))


def child_id(system: str, value: str, resource_type: str, n: int) -> str:
    """The id of the ``n``-th (from 0) resource of ``resource_type`` of that visit."""
    return str(uuid.uuid5(_IDS, f"{visit_key(system, value)}|{resource_type}|{n}"))


def put_entry(resource: dict[str, Any]) -> dict[str, Any]:
    """The transaction entry that stores ``resource`` under its (derived) id."""
    rtype, res_id = resource["resourceType"], resource["id"]
    return {
        "fullUrl": f"urn:uuid:{res_id}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{rtype}/{res_id}"},
    }


# --- the visit's payer -----------------------------------------------------------------------

_COVERAGES = uuid.UUID("0c7f3a4e-9b1d-4e59-8d5a-6f2e1b7c9a30")  # fullUrls of their creates


def bpjs_coverage_entry(card: str, beneficiary: dict[str, Any], payor: str) -> dict[str, Any]:
    """The transaction entry every channel writes for a visit that BPJS pays: a conditional
    create of the Coverage on the patient's card (one Coverage a card, whichever channel and
    visit names it first)."""
    coverage = {
        "resourceType": "Coverage",
        "identifier": [{"system": BPJS_CARD, "value": card}],
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "PUBLICPOL",
                    "display": "public healthcare",
                }
            ]
        },
        "subscriberId": card,
        "beneficiary": beneficiary,
        "payor": [{"display": payor}],
    }
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid5(_COVERAGES, f'{BPJS_CARD}|{card}')}",
        "resource": coverage,
        "request": {
            "method": "POST",
            "url": "Coverage",
            "ifNoneExist": f"identifier={BPJS_CARD}|{card}",
        },
    }


# --- one visit, several channels ---------------------------------------------------------------
#
# The RSUD's HL7 v2 feed and its SIMRS Khanza database describe the same visits, under the same
# Encounter id. Each channel's message is complete for that channel only: the HL7 feed knows the
# status history, the ward and the doctor; Khanza the clinic (service type) and the payer. So
# when a channel writes an Encounter that another channel wrote, the two are merged rather than
# the later replacing the earlier (docs/khanza.md, "One visit, two channels"):
#
# - the status never goes back: the later of the two in the visit's course (planned, arrived,
#   triaged, in-progress, finished; cancelled and entered-in-error above all);
# - the period is the widest (the earlier start, the later end);
# - lists are united, each item once by its key: identifiers (system, value), status history
#   (one entry per status, its period widened), locations (the place; the later location status),
#   diagnoses (the Condition; ordered by rank), participants, reasons;
# - any other element is the preferred channel's (``visit_priority`` of the adapters: the HL7
#   feed before Khanza), the other channel's kept where the preferred one says nothing.
#
# The merge is symmetric, so the two orders of arrival end in the same Encounter; a message that
# adds nothing makes no new version. ``meta.tag`` (system VISIT_CHANNEL) lists the channels merged
# in once both added something, so that a later message of either channel is merged too, never
# replacing the other's part. The visit's Conditions and Procedures are merged alike.

VISIT_CHANNEL = "https://fhirhub.baubaukota.go.id/CodeSystem/visit-channel"
_STATUS_ORDER = {
    "planned": 0,
    "arrived": 1,
    "triaged": 2,
    "in-progress": 3,
    "onleave": 3,
    "finished": 4,
    "cancelled": 5,
    "entered-in-error": 6,
}
_LOCATION_ORDER = {"planned": 0, "reserved": 0, "active": 1, "completed": 2}


def channels_of(resource: dict[str, Any]) -> set[str]:
    """The channels merged in a stored Encounter (none when one channel wrote it)."""
    meta = resource.get("meta") or {}
    return {
        str(t.get("code"))
        for t in meta.get("tag") or []
        if isinstance(t, dict) and t.get("system") == VISIT_CHANNEL
    }


def merge_encounter(preferred: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Two descriptions of one visit as one Encounter (``meta`` aside): ``preferred``'s values
    where both give one, except the elements merged by their meaning (above)."""
    out: dict[str, Any] = {}
    for key in [*preferred, *(k for k in other if k not in preferred)]:
        if key == "meta":
            continue
        a, b = preferred.get(key), other.get(key)
        merge = _MERGES.get(key)
        if merge is not None and isinstance(a if a is not None else b, list):
            a, b = a or [], b or []  # a list said once is still made of unique items
        elif a is None or b is None:
            out[key] = a if b is None else b
            continue
        out[key] = merge(a, b) if merge is not None else _prefer(a, b)
    return out


def _prefer(a: Any, b: Any) -> Any:
    """``a``; a reference to the same thing keeps ``b``'s display when ``a`` has none."""
    if isinstance(a, dict) and isinstance(b, dict) and a.get("reference") == b.get("reference"):
        return {**b, **a}
    return a


def _status(a: str, b: str) -> str:
    return b if _STATUS_ORDER.get(b, -1) > _STATUS_ORDER.get(a, -1) else a


def _instant_key(value: str | None) -> tuple[int, str]:
    """Dates and dateTimes in time order (a date before the same day's times)."""
    if not value:
        return (1, "")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return (0, value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (0, moment.astimezone(UTC).isoformat())


def _period(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {**b, **a}
    starts = [p["start"] for p in (a, b) if p.get("start")]
    ends = [p["end"] for p in (a, b) if p.get("end")]
    if starts:
        out["start"] = min(starts, key=_instant_key)
    if ends:
        out["end"] = max(ends, key=_instant_key)
    return out


def _united(a: list[Any], b: list[Any], key: Any, both: Any = None, order: Any = None) -> list[Any]:
    """``a``'s items, then ``b``'s not in ``a`` (by ``key``); ``both`` makes one item of two
    with the same key; ``order`` sorts the result."""
    out: dict[Any, Any] = {}
    for item in [*a, *b]:
        if not isinstance(item, dict):
            continue
        k = key(item)
        out[k] = item if k not in out else (both(out[k], item) if both else out[k])
    items = list(out.values())
    return sorted(items, key=order) if order is not None else items


def _history(a: list[Any], b: list[Any]) -> list[Any]:
    return _united(
        a,
        b,
        key=lambda h: h.get("status"),
        both=lambda x, y: {**x, "period": _period(x.get("period") or {}, y.get("period") or {})},
        order=lambda h: (
            _instant_key((h.get("period") or {}).get("start")),
            _STATUS_ORDER.get(h.get("status"), -1),
        ),
    )


def _location(x: dict[str, Any], y: dict[str, Any]) -> dict[str, Any]:
    rank_x = _LOCATION_ORDER.get(str(x.get("status")), -1)
    later = y if _LOCATION_ORDER.get(str(y.get("status")), -1) > rank_x else x
    out = {**(x if later is y else y), **later}
    if x.get("period") or y.get("period"):
        out["period"] = _period(x.get("period") or {}, y.get("period") or {})
    return out


def _locations(a: list[Any], b: list[Any]) -> list[Any]:
    return _united(
        a,
        b,
        key=lambda x: (
            (x.get("location") or {}).get("reference"),
            (x.get("location") or {}).get("display"),
        ),
        both=_location,
    )


def _diagnoses(a: list[Any], b: list[Any]) -> list[Any]:
    return _united(
        a,
        b,
        key=lambda d: (d.get("condition") or {}).get("reference"),
        both=lambda x, y: {**y, **x},
        order=lambda d: (
            d.get("rank", 1_000_000),
            str((d.get("condition") or {}).get("reference")),
        ),
    )


def _by_content(a: list[Any], b: list[Any]) -> list[Any]:
    return _united(a, b, key=lambda x: json.dumps(x, sort_keys=True))


_MERGES: dict[str, Any] = {
    "status": _status,
    "period": _period,
    "identifier": lambda a, b: _united(a, b, key=lambda i: (i.get("system"), i.get("value"))),
    "statusHistory": _history,
    "location": _locations,
    "diagnosis": _diagnoses,
    "participant": _by_content,
    "reasonCode": _by_content,
    "type": _by_content,
    "hospitalization": lambda a, b: {**b, **a},
}


def reconcile(
    writer: Writer, bundle: dict[str, Any], source: str, priority: Callable[[str], int]
) -> int:
    """Merge each visit Encounter of ``bundle`` (a ``PUT`` of an Encounter with a visit
    identifier), and each of its Conditions and Procedures, into the stored one when another
    channel wrote that, or several did; returns how many were merged. ``source`` is the
    channel of the bundle (its ``meta.source`` is stamped already); ``priority`` ranks
    channels by name (the higher preferred). A Condition or Procedure is merged by the same
    rule: the preferred channel's elements, the other's where it says nothing."""
    resolved = {
        str(e.get("fullUrl")): str((e.get("request") or {}).get("url"))
        for e in bundle.get("entry", [])
        if (e.get("request") or {}).get("method") == "PUT"
        and "?" not in str((e.get("request") or {}).get("url"))
    }
    visits = [e for e in bundle.get("entry", []) if _is_visit(e)]
    # ... and the visit's diagnoses and procedures (PUT under ids derived from the visit)
    visit_urls = {str(e.get("fullUrl")) for e in visits} | {
        str(e["request"]["url"]) for e in visits
    }
    children = [
        e
        for e in bundle.get("entry", [])
        if (e.get("request") or {}).get("method") == "PUT"
        and str((e.get("request") or {}).get("url", "")).startswith(("Condition/", "Procedure/"))
        and isinstance(e.get("resource"), dict)
        and str((e["resource"].get("encounter") or {}).get("reference")) in visit_urls
    ]
    entries = [*visits, *children]
    keys = [_key(e) for e in entries]
    # The stored versions, read (and locked) in one statement: the transaction would read them
    # anyway, and finds them in the writer's cache.
    writer.prefetch(keys)
    merged = 0
    for entry, (res_type, res_id) in zip(entries, keys, strict=True):
        incoming = entry["resource"]
        current = writer.current_body(res_type, res_id)
        if current is None:
            continue
        theirs = _channel((current.get("meta") or {}).get("source"))
        channels = channels_of(current)
        if theirs == source and not channels:
            continue  # the channel's own update of its own description: it replaces it
        incoming = _resolve(incoming, resolved)
        incoming_first = priority(source) >= priority(theirs or "")
        preferred, other = (incoming, current) if incoming_first else (current, incoming)
        body = merge_encounter(preferred, other)
        if body == {k: v for k, v in current.items() if k != "meta"}:
            entry["resource"] = current  # nothing new: no new version
            continue
        meta = {
            k: v
            for k, v in (preferred.get("meta") or {}).items()
            if k not in ("versionId", "lastUpdated", "tag")
        }
        tags = [
            t
            for t in (preferred.get("meta") or {}).get("tag") or []
            if isinstance(t, dict) and t.get("system") != VISIT_CHANNEL
        ]
        if body == {k: v for k, v in preferred.items() if k != "meta"}:
            names = sorted(channels_of(preferred))  # the other channel added nothing
        else:
            names = sorted(channels | {source} | ({theirs} if theirs else set()))
        tags += [{"system": VISIT_CHANNEL, "code": n} for n in names]
        if tags:
            meta["tag"] = tags
        entry["resource"] = {"resourceType": res_type, **body, "meta": meta}
        merged += 1
    return merged


def _key(entry: dict[str, Any]) -> tuple[str, str]:
    res_type, res_id = str(entry["request"]["url"]).split("/", 1)
    return res_type, res_id


def _is_visit(entry: Any) -> bool:
    """A ``PUT`` of an Encounter with a visit identifier."""
    if not isinstance(entry, dict):
        return False
    request, resource = entry.get("request") or {}, entry.get("resource")
    return (
        request.get("method") == "PUT"
        and str(request.get("url", "")).startswith("Encounter/")
        and "?" not in str(request.get("url", ""))
        and isinstance(resource, dict)
        and any(
            str(i.get("system", "")).startswith(ENCOUNTER_SYSTEM)
            for i in resource.get("identifier") or []
            if isinstance(i, dict)
        )
    )


def _channel(uri: Any) -> str | None:
    """The source of a ``meta.source`` fhirhub stamped (``…/source/<source>/<sender>``)."""
    if not isinstance(uri, str) or not uri.startswith(SOURCE_BASE):
        return None
    return uri[len(SOURCE_BASE) :].split("/", 1)[0] or None


def _resolve(node: Any, resolved: dict[str, str]) -> Any:
    """``node`` with references to the bundle's own ``PUT`` entries as ``Type/id``."""
    if isinstance(node, dict):
        out = {k: _resolve(v, resolved) for k, v in node.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in resolved:
            out["reference"] = resolved[ref]
        return out
    if isinstance(node, list):
        return [_resolve(v, resolved) for v in node]
    return node
