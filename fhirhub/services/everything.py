"""Patient/{id}/$everything: http://hl7.org/fhir/R4/patient-operation-everything.html

The patient and every resource in its compartment (search mode ``match``), and the resources
they refer to, one level out of the compartment and each once (``include``: the Practitioner,
Organization, Location, Medication, ...; references a search parameter indexes). Without
``_count`` the whole set is one Bundle, streamed entry by entry from keyset batches
(:mod:`fhirhub.search.batches`) so that memory stays bounded whatever its size; with ``_count``
it is paged like a search, each page with the resources its matches refer to. ``_type`` and
``_since`` are honoured. AuditEvents are left out unless ``_type`` names them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from fhirhub.config import get_settings
from fhirhub.errors import bad_request, not_found
from fhirhub.model.json import dumps
from fhirhub.search import batches, engine, registry
from fhirhub.search.access import Access, forbidden
from fhirhub.search.engine import Hit
from fhirhub.search.tables import resources
from fhirhub.services import search

BATCH = 500
ALLOWED = {"_count", "_type", "_since", "_cursor", "_format", "_pretty", "start", "end"}
NO_CUTOFF = 2**62


@dataclass(frozen=True)
class Streamed:
    """An unpaged answer, to be written by :func:`stream` (in a unit of work of its own)."""

    where: list[Any]
    cutoff: int
    total: int
    self_url: str
    base_url: str
    access: Access | None = None
    readable: list[str] | None = None


def everything(
    conn: Any,
    *,
    patient_id: str,
    params: list[tuple[str, str]],
    base_url: str,
    access: Access | None = None,
    readable: list[str] | None = None,
) -> dict[str, Any] | Streamed:
    """A page of the answer as a Bundle when the client pages it (``_count``, ``_cursor``);
    otherwise what :func:`stream` needs to write the whole set. With ``access`` (a facility),
    a Patient it may not read is refused (403) and the answer holds only what it may read;
    with ``readable``, only resources of those types (what the client's scopes read)."""
    base_url = base_url.rstrip("/")
    exists = conn.execute(
        engine.select_pks(
            [
                resources.c.res_type == "Patient",
                resources.c.res_id == patient_id,
                resources.c.deleted.is_(False),
            ]
        )
    ).first()
    if exists is None:
        raise not_found(f"Patient/{patient_id} is not known")
    if access is not None and not access.reaches(conn, "Patient", patient_id):
        raise forbidden(f"Patient/{patient_id} is not a patient this client may read")
    for name, _ in params:
        if name not in ALLOWED:
            raise bad_request(f"parameter '{name}' is not supported by $everything", name)
    settings = get_settings()
    ctl = search._controls(None, params, settings.default_page_size, settings.max_page_size)
    where = _where(patient_id, params, ctl.types)
    if access is not None:
        where.extend(access.where(None, resources.c.pk))
    if readable is not None:
        where.append(resources.c.res_type.in_(readable))
    path = f"Patient/{patient_id}/$everything"
    if any(name in ("_count", "_cursor") for name, _ in params):

        def include(hits: list[Hit]) -> list[Hit]:
            sources = [h.pk for h in hits]
            return list(
                _batches(
                    lambda after: batches.referenced(
                        conn, where, NO_CUTOFF, after, BATCH, sources, access, readable
                    )
                )
            )

        with engine.custom_plans(conn):
            return search._run(
                conn, None, params, base_url, ctl, where, [], None, path=path, include=include
            )
    cutoff = engine.max_pk(conn)
    return Streamed(
        where,
        cutoff,
        engine.count(conn, where, None, cutoff),
        search._url(f"{base_url}/{path}", params),
        base_url,
        access,
        readable,
    )


def stream(conn: Any, answer: Streamed) -> Iterator[bytes]:
    """The whole Bundle, in pieces: its head, then the entries a batch at a time."""
    head = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": answer.total,
        "link": [{"relation": "self", "url": answer.self_url}],
    }
    yield dumps(head)[:-1]
    opened = False
    where, cutoff = answer.where, answer.cutoff
    parts: list[tuple[Callable[[int], list[Hit]], str]] = [
        (lambda after: batches.members(conn, where, cutoff, after, BATCH), "match"),
        (
            lambda after: batches.referenced(
                conn, where, cutoff, after, BATCH, access=answer.access, types=answer.readable
            ),
            "include",
        ),
    ]
    for fetch, mode in parts:
        chunk: list[bytes] = []
        for hit in _batches(fetch):
            if hit.body is None:
                continue
            chunk.append(_entry(answer.base_url, hit, mode))
            if len(chunk) == BATCH:
                yield (b"," if opened else b',"entry":[') + b",".join(chunk)
                opened, chunk = True, []
        if chunk:
            yield (b"," if opened else b',"entry":[') + b",".join(chunk)
            opened = True
    yield b"]}" if opened else b"}"


def _batches(fetch: Callable[[int], list[Hit]]) -> Iterator[Hit]:
    after = 0
    while True:
        hits = fetch(after)
        yield from hits
        if len(hits) < BATCH:
            return
        after = hits[-1].pk


def _entry(base_url: str, hit: Hit, mode: str) -> bytes:
    return dumps(
        {
            "fullUrl": f"{base_url}/{hit.res_type}/{hit.res_id}",
            "resource": orjson.Fragment(hit.body or ""),
            "search": {"mode": mode},
        }
    )


def _where(patient_id: str, params: list[tuple[str, str]], only: list[str] | None) -> list[Any]:
    # The audit trail about the record is not the record (and would grow with every read of
    # it): only a ``_type`` that names AuditEvent returns it.
    types = only or sorted(t for t in registry.compartment("Patient") if t != "AuditEvent")
    clauses = []
    for t in types:
        c = engine.compartment_clause("Patient", patient_id, t)
        if c is not None:
            clauses.append(engine.all_of([resources.c.res_type == t, c]))
    if "Patient" in types or not only:
        clauses.append(
            engine.all_of([resources.c.res_type == "Patient", resources.c.res_id == patient_id])
        )
    where = [engine.any_of(clauses)]
    since = dict(params).get("_since")
    if since:
        from fhirhub.search.prefixes import date_clause

        where.append(
            date_clause(resources.c.last_updated, resources.c.last_updated, "ge" + since, "_since")
        )
    return where
