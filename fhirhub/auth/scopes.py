"""SMART App Launch v2 scopes: parse, test an interaction against them, narrow a request.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html

A resource scope reads ``<context>/<resource type or *>.<permissions>[?<query>]``: the context
is ``patient``, ``user`` or ``system``; v2 permissions are a subset of ``cruds`` in that order
(create, read, update, delete, search); the optional query (``?category=...|laboratory``)
restricts the scope to the resources a search with those parameters would find. The v1 forms
``.read``, ``.write`` and ``.*`` are read as ``.rs``, ``.cud`` and ``.cruds`` (the spec's
"scopes for requesting FHIR resources", v1 to v2 table).

fhirhub serves back-end clients only (SMART Backend Services): :func:`allows` honours ``system/``
scopes; ``patient/`` and ``user/`` scopes parse but grant nothing, since fhirhub has no launch
context to bind them to. A wildcard never covers the types in :data:`WILDCARD_EXCLUDED` (the
audit trail): those need a scope naming them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlencode

from fhirhub.auth.errors import AuthError
from fhirhub.model.resource_types import is_resource_type

Interaction = Literal["create", "read", "update", "delete", "search"]
Context = Literal["patient", "user", "system"]

#: Permission letters in the order SMART v2 requires them.
PERMISSIONS = "cruds"
INTERACTION_LETTER: dict[Interaction, str] = {
    "create": "c",
    "read": "r",
    "update": "u",
    "delete": "d",
    "search": "s",
}
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
#: Resource types a ``*`` scope does not reach; only a scope naming them grants access.
WILDCARD_EXCLUDED = frozenset({"AuditEvent"})

_SCOPE = re.compile(
    r"(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})"
    r"\.(?P<perms>[a-z*]{1,5})(?:\?(?P<query>[^\s?]+))?"
)
_QUERY_PART = re.compile(r"[A-Za-z0-9_\-.:]+=[^&=\s]*")


class ScopeError(AuthError, ValueError):
    """A malformed scope; ``scope`` is the offending token, ``reason`` says what is wrong.

    At the token endpoint this is OAuth's ``invalid_scope`` (RFC 6749 §5.2)."""

    def __init__(self, scope: str, reason: str) -> None:
        super().__init__(f"invalid scope {scope!r}: {reason}")
        self.scope = scope
        self.reason = reason


@dataclass(frozen=True, order=True)
class Scope:
    """One resource scope in its v2 form."""

    context: Context
    resource_type: str  # a resource type, or "*"
    permissions: str  # a non-empty subsequence of "cruds"
    query: tuple[tuple[str, str], ...] = ()  # search parameters the scope is restricted to

    def __str__(self) -> str:
        text = f"{self.context}/{self.resource_type}.{self.permissions}"
        return f"{text}?{urlencode(self.query, safe='|:/,')}" if self.query else text

    def covers(self, resource_type: str) -> bool:
        if self.resource_type == "*":
            return resource_type not in WILDCARD_EXCLUDED
        return self.resource_type == resource_type

    def permits(self, interaction: Interaction) -> bool:
        return INTERACTION_LETTER[interaction] in self.permissions


def parse_scope(token: str) -> Scope:
    """One scope token; raises :class:`ScopeError` when it is not a SMART resource scope."""
    m = _SCOPE.fullmatch(token)
    if m is None:
        raise ScopeError(token, "expected <patient|user|system>/<Type or *>.<cruds>[?query]")
    resource_type = m["type"]
    if resource_type != "*" and not is_resource_type(resource_type):
        raise ScopeError(token, f"{resource_type!r} is not an R4 resource type")
    perms = _V1.get(m["perms"], m["perms"])
    if any(c not in PERMISSIONS for c in perms):
        raise ScopeError(token, "permissions are c, r, u, d, s or v1 read, write, *")
    if perms != "".join(c for c in PERMISSIONS if c in perms) or len(set(perms)) != len(perms):
        raise ScopeError(token, "permissions must appear once each, in the order c r u d s")
    query: tuple[tuple[str, str], ...] = ()
    if m["query"] is not None:
        parts = m["query"].split("&")
        if not all(_QUERY_PART.fullmatch(p) for p in parts):
            raise ScopeError(token, "the query must be name=value pairs joined by &")
        query = tuple(parse_qsl(m["query"], keep_blank_values=True, strict_parsing=True))
    context: Context = m["context"]  # type: ignore[assignment]
    return Scope(context, resource_type, perms, query)


@functools.lru_cache(maxsize=1024)
def parse_scopes(text: str) -> tuple[Scope, ...]:
    """A space-separated scope string (RFC 6749 §3.3), duplicates dropped, order kept
    (remembered: a token's scopes are parsed on every request it makes)."""
    if (text and text.strip(" ") != text) or "  " in text:
        raise ScopeError(text, "scopes are separated by single spaces")
    seen: dict[Scope, None] = {}
    for token in text.split(" ") if text else []:
        seen.setdefault(parse_scope(token), None)
    return tuple(seen)


def format_scopes(scopes: tuple[Scope, ...] | list[Scope]) -> str:
    return " ".join(str(s) for s in scopes)


def _matching(
    granted: tuple[Scope, ...], resource_type: str, interaction: Interaction
) -> list[Scope]:
    return [
        s
        for s in granted
        if s.context == "system" and s.covers(resource_type) and s.permits(interaction)
    ]


def allows(granted: tuple[Scope, ...], resource_type: str, interaction: Interaction) -> bool:
    """Whether ``granted`` allows ``interaction`` on every resource of ``resource_type``.

    A scope restricted by a query does not count here: it allows only the resources its search
    finds (see :func:`restrictions`), which the caller must check against each resource."""
    return any(not s.query for s in _matching(granted, resource_type, interaction))


def restrictions(
    granted: tuple[Scope, ...], resource_type: str, interaction: Interaction
) -> tuple[tuple[tuple[str, str], ...], ...] | None:
    """The queries under which ``interaction`` is allowed: ``()`` for unrestricted access,
    ``None`` for none at all, otherwise one query per scope (any one of them suffices)."""
    matching = _matching(granted, resource_type, interaction)
    if not matching:
        return None
    if any(not s.query for s in matching):
        return ()
    return tuple(dict.fromkeys(s.query for s in matching))


def _intersect(requested: Scope, allowed: Scope) -> Scope | None:
    if requested.context != allowed.context:
        return None
    if requested.resource_type == "*":
        if allowed.resource_type in WILDCARD_EXCLUDED:
            return None  # a requested * reaches no more than a granted * would
        resource_type = allowed.resource_type
    elif allowed.covers(requested.resource_type):
        resource_type = requested.resource_type
    else:
        return None
    both = set(requested.permissions) & set(allowed.permissions)
    perms = "".join(c for c in PERMISSIONS if c in both)
    if not perms:
        return None
    # both restrictions hold: their parameters together (search parameters combine as AND)
    query = tuple(dict.fromkeys(allowed.query + requested.query))
    return Scope(requested.context, resource_type, perms, query)


def narrow(requested: tuple[Scope, ...], allowed: tuple[Scope, ...]) -> tuple[Scope, ...]:
    """What may be granted of ``requested`` to a client allowed ``allowed`` (RFC 6749 §3.3:
    the granted scope may be narrower than the requested one). No request means everything
    allowed. A requested ``*`` becomes the allowed types, never more."""
    if not requested:
        return merge(allowed)
    out: list[Scope] = []
    for r in requested:
        for a in allowed:
            s = _intersect(r, a)
            if s is not None:
                out.append(s)
    return merge(out)


def merge(scopes: tuple[Scope, ...] | list[Scope]) -> tuple[Scope, ...]:
    """One scope per context, resource type and query, with the union of their permissions
    (``system/Patient.rs system/Patient.u`` is ``system/Patient.rus``); first-seen order."""
    perms: dict[tuple[Context, str, tuple[tuple[str, str], ...]], set[str]] = {}
    for s in scopes:
        perms.setdefault((s.context, s.resource_type, s.query), set()).update(s.permissions)
    return tuple(
        Scope(context, rt, "".join(c for c in PERMISSIONS if c in p), query)
        for (context, rt, query), p in perms.items()
    )
