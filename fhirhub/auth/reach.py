"""What a request reaches: the (resource type, interaction) pairs its scopes must allow.

A search reads more than its own type: ``_include`` returns the resources a reference points to,
``_revinclude`` those that point back, a chain (``subject:Patient.name=...``) and ``_has``
(``_has:Observation:patient:code=...``) filter on the properties of other types, which is a
search of them. Each of those is a pair here, so that a client cannot reach through a search
what it could not read or search directly. A transaction's entries are each an interaction.

Anything that cannot be told apart (``_include=*``, a reference parameter with no declared
target) reaches every type: only a client allowed all of them may use it (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

from fhirhub.auth.scopes import Interaction
from fhirhub.model.resource_types import is_resource_type, resource_types
from fhirhub.search import registry

Need = tuple[str, Interaction]
ALL = "*"  # every resource type
_MAX_CHAIN = 4


def _targets(res_type: str, code: str) -> list[str] | None:
    """The types a reference parameter may point to; ``None`` when it is not a known reference
    parameter (the search engine refuses or ignores it, and so reaches nothing through it)."""
    p = registry.param(res_type, code) if is_resource_type(res_type) else None
    if p is None or p.get("type") != "reference":
        return None
    targets = [t for t in p.get("target") or [] if is_resource_type(t)]
    return targets or [ALL]


def _chain(res_type: str, links: list[str], out: list[Need]) -> None:
    """``a[:T].b[:U].c``: each type the chain steps into is searched."""
    if len(links) < 2 or len(links) > _MAX_CHAIN + 1:
        if len(links) > _MAX_CHAIN + 1:
            out.append((ALL, "search"))
        return
    first, rest = links[0], links[1:]
    code, _, target = first.partition(":")
    targets = [target] if target else _targets(res_type, code)
    if targets is None:
        return
    for t in targets:
        out.append((t, "search"))
        if t != ALL:
            _chain(t, rest, out)


def _has(value_name: str, out: list[Need]) -> None:
    """``_has:Type:ref:param`` (nested: ``_has:T1:r1:_has:T2:r2:param``)."""
    parts = value_name.split(":")
    while len(parts) >= 4 and parts[0] == "_has":
        out.append((parts[1], "search") if is_resource_type(parts[1]) else (ALL, "search"))
        parts = parts[3:]


def _include(value: str, reverse: bool, out: list[Need]) -> None:
    if value == "*":
        out.append((ALL, "read"))
        return
    parts = value.split(":")
    if len(parts) < 2:
        return  # malformed: the search refuses it
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) > 2 else None
    if reverse:  # the resources of ``source`` that point at the matches
        out.append((source if is_resource_type(source) else ALL, "read"))
        out.append((source if is_resource_type(source) else ALL, "search"))
        return
    targets = [target] if target else _targets(source, code)
    for t in targets or []:
        out.append((t, "read"))


def search(res_types: Iterable[str], params: Iterable[tuple[str, str]]) -> list[Need]:
    """What a search of ``res_types`` (``[ALL]`` for a system search without ``_type``) with
    ``params`` reaches."""
    params = list(params)
    types = list(res_types)
    out: list[Need] = [(t, "search") for t in types]
    for name, value in params:
        base = name.split(":", 1)[0]
        if base in ("_include", "_revinclude"):
            for v in value.split(","):
                _include(v.strip(), base == "_revinclude", out)
        elif name.startswith("_has:"):
            _has(name, out)
        elif "." in name:
            for t in types:
                if t == ALL:
                    out.append((ALL, "search"))
                else:
                    _chain(t, name.split("."), out)
    return out


def system_search_types(params: Iterable[tuple[str, str]]) -> list[str]:
    """The types a search at ``[base]`` covers: its ``_type`` values, or all of them."""
    named = [t.strip() for n, v in params if n == "_type" for t in v.split(",") if t.strip()]
    return named or [ALL]


@cache
def _referenced_from(res_type: str) -> frozenset[str]:
    out: set[str] = set()
    for code, p in registry.params_of(res_type).items():
        if p.get("type") == "reference":
            out.update(_targets(res_type, code) or [])
    return frozenset(out)


def everything(params: Iterable[tuple[str, str]]) -> list[Need]:
    """``Patient/[id]/$everything``: the Patient, the compartment types it returns (``_type``
    or all), and the types those refer to (returned one level out)."""
    named = [t.strip() for n, v in params if n == "_type" for t in v.split(",") if t.strip()]
    types = named or sorted(registry.compartment("Patient"))
    out: list[Need] = [("Patient", "read")]
    for t in types:
        out.append((t, "read"))
        out.extend((r, "read") for r in sorted(_referenced_from(t)))
    return out


def compartment(comp_type: str) -> list[str]:
    """The types ``[Type]/[id]/*`` searches."""
    return sorted(registry.compartment(comp_type)) or [ALL]


def _entry_url(url: str) -> tuple[list[str], str]:
    path, _, query = url.partition("?")
    return [p for p in path.strip("/").split("/") if p], query


def bundle_entry(entry: Any) -> list[Need] | None:
    """What one entry of a batch or transaction does; ``None`` when it cannot be told."""
    if not isinstance(entry, dict):
        return None
    request = entry.get("request")
    if request is None:  # a collection's entry, as a source sends it: stored as it is
        resource = entry.get("resource")
        rt = resource.get("resourceType") if isinstance(resource, dict) else None
        return [(rt, "create"), (rt, "update")] if isinstance(rt, str) else None
    if not isinstance(request, dict):
        return None
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        return None
    parts, query = _entry_url(url)
    if not parts or not is_resource_type(parts[0]):
        return None
    rt = parts[0]
    params = parse_qsl(query, keep_blank_values=True)
    method = method.upper()
    conditional: list[Need] = [(rt, "search")] if query or len(parts) == 1 else []
    if method in ("GET", "HEAD"):
        return search([rt], params) if len(parts) == 1 else [(rt, "read")]
    if method == "POST" and len(parts) == 1:
        checked: list[Need] = [(rt, "search")] if request.get("ifNoneExist") else []
        return [(rt, "create"), *checked]
    if method in ("PUT", "PATCH"):
        return [(rt, "update"), *conditional]
    if method == "DELETE":
        return [(rt, "delete"), *conditional]
    return None


def expand(needs: Iterable[Need]) -> list[Need]:
    """``ALL`` replaced by every R4 resource type."""
    out: list[Need] = []
    for t, i in dict.fromkeys(needs):
        if t == ALL:
            out.extend((x, i) for x in sorted(resource_types()))
        else:
            out.append((t, i))
    return list(dict.fromkeys(out))
