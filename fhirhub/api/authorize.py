"""The one place where every request is authorised (issue 13).

:func:`authorize` is a dependency of the whole app. It finds the rule of the matched route and
method in :data:`RULES`, and with ``FHIRHUB_AUTH=on``:

- a public route (``metadata``, ``.well-known``, ``/auth/*``, ``healthz``, ``readyz``) passes;
- otherwise the request needs a bearer token this server issued for this base URL to a client
  still active: without one, or with a bad one, 401 with ``WWW-Authenticate``;
- the rule then says what the request reaches (:mod:`fhirhub.auth.reach`: the resource types and
  interactions, including through ``_include``, ``_revinclude``, chains, ``_has``, a
  transaction's entries) or which roles may use it; anything the token's scopes or role do not
  allow is a 403.

A route with no rule is refused (a test keeps every route in the table). The authenticated
client is ``request.state.client`` (an :class:`~fhirhub.auth.tokens.AccessToken`: id, role,
organization), ``None`` with auth off.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
import orjson
from fastapi import Request
from fastapi.routing import APIRoute

from fhirhub.api.bodies import read_body, refuse_declared_oversize, too_large
from fhirhub.api.deps import base_url, origin, origin_key
from fhirhub.api.inputs import MAX_ID
from fhirhub.auth import binding, reach
from fhirhub.auth.errors import TokenError
from fhirhub.auth.roles import Role
from fhirhub.auth.scopes import WILDCARD_EXCLUDED, allows
from fhirhub.auth.server import AuthServer
from fhirhub.auth.tokens import AccessToken
from fhirhub.errors import FhirError, Issue
from fhirhub.model.resource_types import is_resource_type
from fhirhub.services import transaction

Rule = Callable[[Request, AccessToken], Awaitable[list[reach.Need]] | None]
_REALM = 'Bearer realm="fhirhub"'


def unauthorised(reason: str | None) -> FhirError:
    """401: no token (``reason`` None) or a bad one."""
    header = _REALM if reason is None else f'{_REALM}, error="invalid_token"'
    text = reason or "This request needs an access token (Authorization: Bearer ...)"
    return FhirError(401, [Issue("login", text)], {"WWW-Authenticate": header})


_INSUFFICIENT = {"WWW-Authenticate": f'{_REALM}, error="insufficient_scope"'}


def forbidden(text: str) -> FhirError:
    return FhirError(403, [Issue("forbidden", text)], _INSUFFICIENT)


# --- what each route reaches --------------------------------------------------------------


def _types(request: Request, name: str) -> list[str]:
    value = request.path_params.get(name)
    return [value] if isinstance(value, str) and is_resource_type(value) else []


def _query(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


async def _body_once(request: Request, limit: int) -> bytes:
    """The body (decompressed), read here within ``limit`` and kept for the route, which reads
    it again through :func:`read_body` (Starlette replays ``request._body``)."""
    refuse_declared_oversize(request, limit)
    if not hasattr(request, "_body"):
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        request._body = b"".join(chunks)
    return await read_body(request, limit, allow_empty=True)


def _parsed(raw: bytes) -> Any:
    """The body as JSON for looking at (numbers need not be exact here: the route parses it
    again, with fhirhub's rules); ``None`` when it is not JSON, which the route refuses."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


#: Rules that decide from the token, the route, its type path parameters and the query alone
#: (never the body, a resource id or the database): their GET decisions are remembered
#: (:class:`Decisions`).
_PURE: set[Rule] = set()


def _pure(rule: Rule) -> Rule:
    _PURE.add(rule)
    return rule


def _interaction(interaction: str, type_param: str = "res_type") -> Rule:
    async def rule(request: Request, _: AccessToken) -> list[reach.Need]:
        return [(t, interaction) for t in _types(request, type_param)]  # type: ignore[misc]

    return _pure(rule)


def _conditional(interaction: str) -> Rule:
    async def rule(request: Request, _: AccessToken) -> list[reach.Need]:
        types = _types(request, "res_type")
        return [(t, i) for t in types for i in (interaction, "search")]  # type: ignore[misc]

    return _pure(rule)


@_pure
async def _search_type(request: Request, _: AccessToken) -> list[reach.Need]:
    return reach.search(_types(request, "res_type"), _query(request))


async def _search_post(request: Request, _: AccessToken) -> list[reach.Need]:
    limit = request.app.state.settings.max_search_body_bytes
    form = parse_qsl((await _body_once(request, limit)).decode(errors="replace"), True)
    return reach.search(_types(request, "res_type"), _query(request) + form)


@_pure
async def _search_system(request: Request, _: AccessToken) -> list[reach.Need]:
    params = _query(request)
    return reach.search(reach.system_search_types(params), params)


@_pure
async def _history_system(request: Request, _: AccessToken) -> list[reach.Need]:
    return [(reach.ALL, "search")]


@_pure
async def _compartment(request: Request, token: AccessToken) -> list[reach.Need]:
    owner = _types(request, "res_type")
    target = request.path_params.get("compartment_type", "")
    params = _query(request)
    if target == "$everything":
        if owner == ["Patient"] and token.role == Role.facility:
            # answered with only the types its scopes read, of its facility's records
            # (fhirhub.api.facility): the Patient must be one it may read
            return [("Patient", "read")]
        return reach.everything(params) if owner == ["Patient"] else []
    if target == "*":
        return [n for t in owner for n in reach.search(reach.compartment(t), params)]
    return reach.search(_types(request, "compartment_type"), params)


async def _bundle(request: Request, _: AccessToken) -> list[reach.Need]:
    bundle = _parsed(await _body_once(request, request.app.state.settings.max_body_bytes))
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    needs: list[reach.Need] = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        found = reach.bundle_entry(entry)
        if found is None:
            # as the route reads it: an absolute URL on this server's base is made relative; a
            # malformed entry does nothing and needs nothing: the route answers it as it would
            # without auth (a transaction's 400 names every such entry, a batch answers each)
            try:
                parsed = transaction.parse_entry(i, entry, base_url(request))
            except FhirError:
                continue
            found = reach.bundle_entry(
                {**entry, "request": {**entry["request"], "url": parsed.url}}
            )
        if found is None:
            raise forbidden(f"Bundle.entry[{i}]: what this entry does cannot be told")
        needs.extend(found)
    return needs


def _roles(*roles: Role) -> Rule:
    async def rule(request: Request, token: AccessToken) -> list[reach.Need]:
        if token.role not in roles:
            names = ", ".join(r.value for r in roles)
            raise forbidden(f"Only a client of role {names} may use this")
        return []

    return _pure(rule)


async def _ingest(request: Request, token: AccessToken) -> list[reach.Need]:
    if token.role in (Role.sync, Role.admin):
        return []
    if token.role == Role.facility:
        message_id = request.path_params.get("message_id")
        if message_id is not None:  # the status of a message: only of one it sent
            if not (message_id.isdigit() and 1 <= int(message_id) <= MAX_ID):
                return []  # the route refuses it (400)
            service = request.app.state.ingest
            row = await anyio.to_thread.run_sync(service.get, int(message_id))
            if row.sender != token.organization:
                raise forbidden("A facility may see only the messages it sent")
            return []
        source = request.path_params.get("source")
        adapter = getattr(request.state, "client_adapter", None)
        if source == adapter:
            return []
        raise forbidden("A facility may send only through its own source adapter")
    raise forbidden("Only a facility, sync or admin client may send messages")


def _needs(*needs: reach.Need) -> Rule:
    async def rule(request: Request, _: AccessToken) -> list[reach.Need]:
        return list(needs)

    return _pure(rule)


PUBLIC: Rule | None = None
_ADMIN = _roles(Role.admin)
_STEWARD = _roles(Role.steward, Role.admin)  # the patient index's decisions
_INDICATORS = _roles(Role.analyst, Role.sync, Role.admin)  # measures and views

# --- the audit trail (docs/auth.md, Audit) -------------------------------------------------


async def _view_run(request: Request, token: AccessToken) -> list[reach.Need]:
    """``$viewdefinition-run``: the indicator roles; a view given inline that reads a type no
    wildcard reaches (AuditEvent) needs a scope naming it, as a search of it would."""
    await _INDICATORS(request, token)  # type: ignore[misc]
    if request.method != "POST":
        return []  # a catalogued view (FHIRHUB_VIEWS_DIR)
    body = _parsed(await _body_once(request, request.app.state.settings.max_body_bytes))
    params = body.get("parameter") if isinstance(body, dict) else None
    needs: list[reach.Need] = []
    for param in params if isinstance(params, list) else []:
        view = param.get("resource") if isinstance(param, dict) else None
        read = view.get("resource") if isinstance(view, dict) else None
        if isinstance(read, str) and read in WILDCARD_EXCLUDED:
            needs.append((read, "search"))
    return needs


#: (method, route template) -> the rule; ``PUBLIC`` needs no token.
RULES: dict[tuple[str, str], Rule | None] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): _ADMIN,
    ("POST", "/auth/token"): PUBLIC,
    ("GET", "/auth/jwks"): PUBLIC,
    ("GET", "/.well-known/smart-configuration"): PUBLIC,
    ("GET", "/fhir/.well-known/smart-configuration"): PUBLIC,
    ("GET", "/fhir/metadata"): PUBLIC,
    **{(m, "/fhir/metadata"): PUBLIC for m in ("PUT", "POST", "DELETE", "PATCH")},
    ("POST", "/fhir"): _bundle,
    ("GET", "/fhir"): _search_system,
    ("GET", "/fhir/_history"): _history_system,
    ("POST", "/fhir/$reindex"): _ADMIN,
    ("POST", "/fhir/{res_type}/$reindex"): _ADMIN,
    ("GET", "/fhir/{res_type}"): _search_type,
    ("POST", "/fhir/{res_type}/_search"): _search_post,
    ("POST", "/fhir/{res_type}"): _interaction("create"),
    ("PUT", "/fhir/{res_type}"): _conditional("update"),
    ("DELETE", "/fhir/{res_type}"): _conditional("delete"),
    ("GET", "/fhir/{res_type}/_history"): _interaction("search"),
    ("GET", "/fhir/{res_type}/{res_id}"): _interaction("read"),
    ("PUT", "/fhir/{res_type}/{res_id}"): _interaction("update"),
    ("PATCH", "/fhir/{res_type}/{res_id}"): _interaction("update"),
    ("DELETE", "/fhir/{res_type}/{res_id}"): _interaction("delete"),
    ("GET", "/fhir/{res_type}/{res_id}/_history"): _interaction("read"),
    ("GET", "/fhir/{res_type}/{res_id}/_history/{version}"): _interaction("read"),
    ("GET", "/fhir/{res_type}/{res_id}/{compartment_type}"): _compartment,
    # the patient index (docs/mpi.md): $match is a search of Patients
    ("POST", "/fhir/Patient/$match"): _needs(("Patient", "search")),
    ("POST", "/fhir/Patient/$mpi-link"): _STEWARD,
    ("POST", "/fhir/Patient/$mpi-unlink"): _STEWARD,
    # indicators (docs/measures.md) and SQL on FHIR views
    **{
        (m, f"/fhir/Measure{p}/$evaluate-measure"): _INDICATORS
        for m in ("GET", "POST")
        for p in ("", "/{measure_id}")
    },
    ("GET", "/fhir/Measure/{measure_id}/$data-requirements"): _INDICATORS,
    ("POST", "/fhir/ViewDefinition/$viewdefinition-run"): _view_run,
    ("GET", "/fhir/ViewDefinition/{view_id}/$viewdefinition-run"): _view_run,
    ("POST", "/fhir/ViewDefinition/{view_id}/$viewdefinition-run"): _view_run,
    ("POST", "/ingest/{source}"): _ingest,
    ("GET", "/ingest/status/{message_id}"): _ingest,
    ("GET", "/admin/inbox"): _ADMIN,
    ("GET", "/admin/inbox/counts"): _ADMIN,
    ("GET", "/admin/inbox/{message_id}"): _ADMIN,
    ("GET", "/admin/inbox/{message_id}/payload"): _ADMIN,
    ("POST", "/admin/inbox/{message_id}/replay"): _ADMIN,
}


def rule_of(request: Request) -> tuple[bool, Rule | None]:
    """Whether the matched route has a rule, and the rule."""
    route = request.scope.get("route")
    method = "GET" if request.method == "HEAD" else request.method
    path = route.path if isinstance(route, APIRoute) else ""
    key = (method, path)
    return key in RULES, RULES.get(key)


# --- the dependency -----------------------------------------------------------------------


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise unauthorised(None)
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthorised("The Authorization header must read 'Bearer <access token>'")
    return value.strip()


@lru_cache(maxsize=64)
def _loopback_or_named(host: str) -> bool:
    """Whether the address a request came in on is a loopback one; a name (a test client's,
    a Unix socket's path) is not an address this checks."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return bool((mapped or address).is_loopback)


def issuer_url(request: Request) -> str:
    settings = request.app.state.settings
    if settings.auth_issuer:
        return str(settings.auth_issuer).rstrip("/")
    return f"{origin(request)}/auth"


async def authorize(request: Request) -> None:
    request.state.client = None
    known, rule = rule_of(request)
    if known and rule is PUBLIC:
        return
    auth: AuthServer | None = request.app.state.auth
    if auth is None:  # FHIRHUB_AUTH=off: on a loopback address only (fhirhub serve checks)
        server = request.scope.get("server")
        if server and not _loopback_or_named(str(server[0])):
            raise forbidden(
                "Authorisation is off (FHIRHUB_AUTH=off): this server answers requests made "
                "to a loopback address only"
            )
        return
    decisions: Decisions = request.app.state.decisions
    key = decisions.key(request) if rule in _PURE else None
    decided = decisions.get(key, auth) if key is not None else None
    if decided is not None:  # this very request was allowed a moment ago
        token, request.state.client_adapter = decided
        request.state.client = token
        _throttle(request, token)
        return
    token, client_until = await _token(request, auth)
    request.state.client = token
    if not known or rule is None:
        raise forbidden("No client may use this route")
    _throttle(request, token)
    needs = await rule(request, token)  # type: ignore[misc]
    if needs:
        granted = token.scopes()
        for res_type, interaction in reach.expand(needs):
            if not allows(granted, res_type, interaction):
                raise forbidden(
                    f"The token's scopes do not allow {interaction} on {res_type} "
                    f"(granted: {token.scope or 'none'})"
                )
    if token.role == Role.facility and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        await _as_itself(request, token)
    if key is not None:
        decisions.remember(key, token, request.state.client_adapter, client_until, auth.leeway)


def _throttle(request: Request, token: AccessToken) -> None:
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        wait = limiter.take(token.client_id)
        if wait:
            raise FhirError(
                429,
                [Issue("throttled", "Too many requests from this client; slow down")],
                {"Retry-After": str(wait)},
            )


class Decisions:
    """The allowed GET requests of the last moments, by everything their decision read: the
    Authorization header, the address the client called (issuer and audience come from it),
    the route, its type path parameters and the query. A request like one of them is allowed
    again without verifying, looking up or matching anything, while the token is still valid
    and the client's lookup still holds (:data:`fhirhub.auth.server.CLIENT_CACHE_SECONDS`: a
    revoked client is refused as soon as without this). Only rules in :data:`_PURE` are
    remembered; a refusal never is. Bounded: emptied when full."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._known: dict[tuple[Any, ...], tuple[AccessToken, str | None, float, int]] = {}

    def key(self, request: Request) -> tuple[Any, ...] | None:
        scope = request.scope
        if scope["method"] not in ("GET", "HEAD"):
            return None
        # the first Authorization header, as the token check reads it
        bearer = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if bearer is None:
            return None
        route = scope.get("route")
        params = scope.get("path_params", {})
        return (
            bearer,
            origin_key(scope),  # the token's issuer and audience come from it
            scope["method"],
            route.path if isinstance(route, APIRoute) else "",
            params.get("res_type"),
            params.get("compartment_type"),
            scope.get("query_string", b""),
        )

    def get(self, key: tuple[Any, ...], auth: AuthServer) -> tuple[AccessToken, str | None] | None:
        hit = self._known.get(key)
        if hit is None:
            return None
        token, adapter, client_until, token_until = hit
        if client_until > time.monotonic() and token_until >= auth.now():
            return token, adapter
        self._known.pop(key, None)
        return None

    def remember(
        self,
        key: tuple[Any, ...],
        token: AccessToken,
        adapter: str | None,
        client_until: float,
        leeway: int,
    ) -> None:
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[key] = (token, adapter, client_until, token.expires_at + leeway)


_FACILITY_WRITES = {"/fhir", "/fhir/{res_type}", "/fhir/{res_type}/{res_id}"}


async def _as_itself(request: Request, token: AccessToken) -> None:
    """A facility writes only as its own Organization (:mod:`fhirhub.auth.binding`)."""
    route = request.scope.get("route")
    path = route.path if isinstance(route, APIRoute) else ""
    if path not in _FACILITY_WRITES:
        return
    own = token.organization
    if own is None:
        raise forbidden("A facility client without an Organization may not write")
    if path == "/fhir/{res_type}/{res_id}" and request.method != "POST":
        await _stored_as_itself(request, own)
    if request.method == "DELETE":
        if path == "/fhir/{res_type}":
            raise forbidden("A facility may not delete by search criteria; delete by id")
        return
    body = _parsed(await _body_once(request, request.app.state.settings.max_body_bytes))
    found: tuple[str, str] | None = None
    if request.method == "PATCH":
        found = binding.foreign_claim_in_patch(body, own, request.path_params["res_type"])
    elif path == "/fhir":
        entries = body.get("entry") if isinstance(body, dict) else None
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            found = binding.foreign_claim(resource, own, f"Bundle.entry[{i}].resource")
            if found is not None:
                break
    else:
        found = binding.foreign_claim(body, own)
    if found is not None:
        expression, other = found
        raise FhirError(
            403,
            [Issue("forbidden", f"{own} may not write data that names {other}", (expression,))],
            _INSUFFICIENT,
        )


async def _stored_as_itself(request: Request, own: str) -> None:
    """The resource a facility updates, patches or deletes must not be another's already."""
    res_type = request.path_params.get("res_type")
    res_id = request.path_params.get("res_id")
    if not isinstance(res_type, str) or not is_resource_type(res_type):
        return
    db = request.app.state.database

    def stored() -> str | None:
        with db.read(one_statement=True) as repo:
            found = repo.current(res_type, str(res_id))
        return found.content if found is not None and not found.deleted else None

    content = await db.run(stored)
    if content is None:
        return
    found = binding.foreign_claim(_parsed(content.encode()), own)
    if found is not None:
        raise FhirError(
            403,
            [
                Issue(
                    "forbidden",
                    f"{res_type}/{res_id} names {found[1]} (at {found[0]}): "
                    f"{own} may not change it",
                )
            ],
            _INSUFFICIENT,
        )


def bound_source(request: Request) -> tuple[str, str] | None:
    """A facility client's source adapter and Organization: its Bundles at ``POST /fhir`` go
    through that adapter, as sent by that Organization, whatever their records look like."""
    token = getattr(request.state, "client", None)
    adapter = getattr(request.state, "client_adapter", None)
    if token is None or token.role != Role.facility or not adapter or not token.organization:
        return None
    return str(adapter), str(token.organization)


async def _token(request: Request, auth: AuthServer) -> tuple[AccessToken, float]:
    """The verified token of an active client, and until when (:func:`time.monotonic`) the
    client's lookup holds."""
    value = _bearer(request)
    try:
        token = auth.verify_cached(value, issuer=issuer_url(request), audience=base_url(request))
    except TokenError as exc:
        raise unauthorised(f"The access token is refused: {exc}") from None
    until, client = auth.cached_client(token.client_id)
    if not until:
        until, client = await anyio.to_thread.run_sync(auth.load_client, token.client_id)
    if client is None or not client.active:
        raise unauthorised("The access token's client is unknown or revoked")
    request.state.client_adapter = client.adapter
    return token, until


class RateLimiter:
    """Per client: ``rate`` requests a second on average, bursts of ``burst`` (a token bucket
    in this process)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> int:
        """0 when the request may go on; else the seconds to wait (Retry-After)."""
        now = self._clock()
        level, at = self._buckets.get(key, (float(self.burst), now))
        level = min(float(self.burst), level + (now - at) * self.rate)
        if level < 1.0:
            self._buckets[key] = (level, now)
            return max(1, int((1.0 - level) / self.rate + 0.999))
        self._buckets[key] = (level - 1.0, now)
        return 0


def describe(token: Any) -> dict[str, Any] | None:
    """The authenticated client as audit records name it."""
    if token is None:
        return None
    return {"id": token.client_id, "role": token.role, "organization": token.organization}
