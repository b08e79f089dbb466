"""Checks on the request line and headers that every route shares.

A NUL character is refused wherever it appears (path, query, headers): no database can search
for it and PostgreSQL cannot store it, so SQLite and PostgreSQL answer alike, with a 400.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Path, Request
from fastapi.routing import APIRoute

from fhirhub.errors import bad_request


async def refuse_nul(request: Request) -> None:
    """A router dependency: 400 for a NUL character in the URL or a header. Byte searches
    first: a request without ``%00`` or a NUL byte costs next to nothing."""
    scope = request.scope
    if "\x00" in scope["path"]:
        raise bad_request("NUL characters are not allowed in the URL")
    if b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]:
        for name, value in request.query_params.multi_items():
            if "\x00" in name or "\x00" in value:
                raise bad_request("NUL characters are not allowed in the URL", name)
    for raw_name, raw_value in scope["headers"]:
        # Conditional headers hold URL queries (If-None-Exist): their escapes count too.
        if b"\x00" in raw_value or (
            b"%00" in raw_value and "\x00" in unquote(raw_value.decode("latin-1"))
        ):
            raise bad_request(
                f"NUL characters are not allowed in the {raw_name.decode('latin-1')} header"
            )


MAX_ID = 2**63 - 1  # the largest BIGINT
MessageId = Annotated[int, Path(ge=1, le=MAX_ID, description="An inbox message id.")]


def allow_head(router: APIRouter) -> None:
    """Every GET route of ``router`` answers HEAD too: the same status and headers, and no
    body (the server leaves it out for HEAD). Routes of their own, out of the OpenAPI
    document, so that each operation keeps one id there."""
    for route in list(router.routes):
        if isinstance(route, APIRoute) and route.methods and "GET" in route.methods:
            router.routes.append(
                APIRoute(
                    route.path,
                    route.endpoint,
                    methods=["HEAD"],
                    name=f"{route.name}_head",
                    include_in_schema=False,
                    dependencies=route.dependencies,
                    response_class=route.response_class,
                )
            )
