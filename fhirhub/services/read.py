"""Read and vread. http://hl7.org/fhir/R4/http.html#read, #vread"""

from __future__ import annotations

from fhirhub.errors import FhirError, Issue
from fhirhub.search.access import Access, forbidden
from fhirhub.services.writes import check_type
from fhirhub.storage.repository import ResourceRepository, StoredVersion


def read(repo: ResourceRepository, res_type: str, res_id: str) -> StoredVersion:
    check_type(res_type)
    found = repo.current(res_type, res_id)
    if found is None:
        raise FhirError.single(404, "not-found", f"{res_type}/{res_id} is not known")
    if found.deleted:
        raise FhirError(
            410,
            [_deleted(res_type, res_id)],
            {"ETag": f'W/"{found.version}"'},
        )
    return found


def vread(repo: ResourceRepository, res_type: str, res_id: str, version: str) -> StoredVersion:
    check_type(res_type)
    if not (version.isascii() and version.isdigit() and len(version) <= 9):  # an INTEGER
        raise FhirError.single(404, "not-found", f"{res_type}/{res_id} has no version '{version}'")
    found = repo.version(res_type, res_id, int(version))
    if found is None:
        raise FhirError.single(404, "not-found", f"{res_type}/{res_id} has no version {version}")
    if found.deleted:
        raise FhirError(410, [_deleted(res_type, res_id, version)])
    return found


def _deleted(res_type: str, res_id: str, version: str | None = None) -> Issue:
    from fhirhub.errors import Issue

    what = f"{res_type}/{res_id}" + (f" version {version}" if version else "")
    return Issue("deleted", f"{what} was deleted")


def refuse_unreachable(
    repo: ResourceRepository, access: Access, res_type: str, res_id: str
) -> None:
    """403 when ``res_type/res_id`` exists but is not one the client may read (its current
    version judged: :mod:`fhirhub.search.access`)."""
    if res_type in access.open_types:
        return
    found = repo.current(res_type, res_id)
    if found is None or found.deleted:
        return  # the interaction says 404 or 410 itself
    if not access.reaches(repo.conn, res_type, res_id):
        raise forbidden(f"{res_type}/{res_id} is not a record this client may read")
