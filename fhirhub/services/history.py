"""History at instance, type and system level. http://hl7.org/fhir/R4/http.html#history

Pages run newest first and continue below a cursor (last_updated, resource, version), so a
page never repeats or skips a version while others write: new versions sort above the cursor.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from fhirhub.errors import bad_request
from fhirhub.model.instant import now_us, parse_instant, to_instant
from fhirhub.search.access import Access
from fhirhub.services import search
from fhirhub.services.read import refuse_unreachable
from fhirhub.services.transaction import REASONS
from fhirhub.services.writes import check_type
from fhirhub.storage.models import resource_versions
from fhirhub.storage.repository import ResourceRepository, StoredVersion

KNOWN = {"_count", "_since", "_at", "_page", "_total", "_format", "_pretty", "_elements"}


def history(
    repo: ResourceRepository,
    *,
    res_type: str | None,
    res_id: str | None,
    params: list[tuple[str, str]],
    base_url: str,
    default_count: int,
    max_count: int,
    access: Access | None = None,
) -> dict[str, Any]:
    """A ``history`` Bundle; with ``access``, of the records the client may read (judged on
    their current version: an instance it may not read is refused, 403)."""
    if res_type is not None:
        check_type(res_type)
    where: list[Any] = []
    if access is not None:
        if res_type is not None and res_id is not None:
            refuse_unreachable(repo, access, res_type, res_id)
        where = access.where(res_type, resource_versions.c.resource_pk)
    values = dict(params)
    count = _count(values.get("_count"), default_count, max_count)
    since = parse_instant(values["_since"], "_since") if "_since" in values else None
    before = None
    if "_at" in values:  # versions that were current at _at: we take those written up to it
        before = parse_instant(values["_at"], "_at") + 1
    cursor = _cursor(values.get("_page"))
    with_total = res_id is not None or values.get("_total") == "accurate"
    page = repo.history(
        res_type=res_type,
        res_id=res_id,
        since=since,
        before=before,
        count=count,
        cursor=cursor,
        with_total=with_total,
        where=where,
    )
    path = "/".join(p for p in (res_type, res_id) if p) + ("/_history" if res_type else "_history")
    self_url = f"{base_url}/{path}"
    keep = [(k, v) for k, v in params if k in KNOWN and k != "_page"]
    links = [{"relation": "self", "url": _url(self_url, params)}]
    if page.cursor is not None:
        token = "_".join(str(part) for part in page.cursor)
        links.append({"relation": "next", "url": _url(self_url, [*keep, ("_page", token)])})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "meta": {"lastUpdated": to_instant(now_us())},
    }
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    elements = _elements(params)
    bundle["entry"] = [_entry(v, base_url, elements) for v in page.versions]
    return bundle


def _elements(params: list[tuple[str, str]]) -> search._Controls | None:
    """``_elements`` (http://hl7.org/fhir/R4/search.html#elements), as search applies it."""
    wanted = [e.strip() for k, v in params if k == "_elements" for e in v.split(",") if e.strip()]
    if not wanted:
        return None
    ctl = search._Controls()
    ctl.elements = wanted
    return ctl


def _entry(v: StoredVersion, base_url: str, elements: search._Controls | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"fullUrl": f"{base_url}/{v.res_type}/{v.res_id}"}
    if v.content is not None and elements is not None:
        entry["resource"] = search._subset(orjson.loads(v.content), elements)
    elif v.content is not None:
        entry["resource"] = orjson.Fragment(v.content)
    method = v.method if v.method in ("POST", "PUT", "DELETE", "PATCH") else "PUT"
    url = v.res_type if method == "POST" else f"{v.res_type}/{v.res_id}"
    entry["request"] = {"method": method, "url": url}
    status = 201 if v.version == 1 and method != "DELETE" else 204 if v.deleted else 200
    entry["response"] = {
        "status": f"{status} {REASONS[status]}",
        "etag": f'W/"{v.version}"',
        "lastModified": to_instant(v.last_updated),
    }
    return entry


def _count(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    return search.count_value(value, maximum)


def _cursor(value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    parts = value.split("_")
    bits = (64, 64, 32)  # last_updated, resource_pk (BIGINT), version (INTEGER)
    if len(parts) != 3 or not all(_fits(p, b) for p, b in zip(parts, bits, strict=True)):
        raise bad_request(f"_page '{value}' is not a page of this server", "_page")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _fits(text: str, bits: int) -> bool:
    """Is ``text`` a whole number a signed ``bits``-bit column holds?"""
    digits = text.removeprefix("-")
    return (
        digits.isascii()
        and digits.isdigit()
        and len(digits) <= 19
        and int(digits) < 2 ** (bits - 1)
    )


def _url(base: str, params: list[tuple[str, str]]) -> str:
    return f"{base}?{urlencode(params)}" if params else base
