"""A facility client's bounds on the request's reads and writes (issue 13).

:func:`fhirhub.api.authorize.authorize` checks what a request may reach by type and interaction;
a ``facility`` client is further held to its own facility's records
(:mod:`fhirhub.search.access`, documented in docs/auth.md): the routes pass :func:`access_of` to
the services, which put it inside their SQL, and :func:`bind_writer` makes the request's
Writer match, change and stamp as the facility.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request

from fhirhub.auth import binding
from fhirhub.auth.roles import Role
from fhirhub.auth.scopes import allows
from fhirhub.search.access import Access
from fhirhub.services.writes import Writer


def access_of(request: Request) -> Access | None:
    """What the request's client may read; None when it is not held to a facility (every
    other role, and auth off)."""
    token = getattr(request.state, "client", None)
    if token is None or token.role != Role.facility:
        return None
    cached: Access | None = getattr(request.state, "access", None)
    if cached is None:
        adapter = getattr(request.state, "client_adapter", None)
        cached = binding.reads_of(token.organization, adapter)
        request.state.access = cached
    return cached


def readable_types(request: Request, types: Iterable[str]) -> list[str] | None:
    """Of ``types``, those the facility client's scopes may read; None for any other client
    (whose request was refused unless it may read them all)."""
    token = getattr(request.state, "client", None)
    if token is None or token.role != Role.facility:
        return None
    granted = token.scopes()
    return [t for t in types if allows(granted, t, "read")]


def bind_writer(request: Request, writer: Writer) -> Writer:
    """``writer`` as the request's facility client writes (unchanged for any other client)."""
    access = access_of(request)
    if access is None:
        return writer
    writer.access = access
    if access.organization is not None:
        adapter = getattr(request.state, "client_adapter", None)
        source = binding.facility_source(adapter, access.organization)
        writer.stamp = binding.stamper(access.organization, source)
    return writer


def as_client(request: Request, work: Any) -> Any:
    """``work(writer)`` with the writer bound to the request's client."""
    return lambda writer: work(bind_writer(request, writer))
