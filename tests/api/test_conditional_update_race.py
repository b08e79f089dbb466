"""Race-free conditional update. http://hl7.org/fhir/R4/http.html#cond-update

32 clients on their own connections to a real server (two workers) send the same conditional
update of a Patient that does not exist yet, at the same moment: one resource is created and
every other update lands on it, one version each; none creates a second Patient.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from tests.api.conftest import LiveServer
from tests.api.factories import NIK, patient
from tests.api.test_concurrency import CLIENTS, _all_at_once, _stored


@pytest.mark.slow  # a real server with two workers: about 12 s
def test_concurrent_conditional_updates_make_one_resource(
    live_server_factory: Callable[..., LiveServer], db_url: str
) -> None:
    server = live_server_factory(workers=2)
    nik = f"7472014501{uuid.uuid4().int % 10**6:06}"
    path = f"/fhir/Patient?identifier={NIK}|{nik}"
    headers = {"Content-Type": "application/fhir+json"}
    requests = [
        ("PUT", path, json.dumps(patient(nik=nik, family=f"Keluarga {i}")).encode(), headers)
        for i in range(CLIENTS)
    ]
    results = _all_at_once(server, requests)

    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * (CLIENTS - 1) + [201], statuses
    ids = {body["id"] for _, _, body in results}
    assert len(ids) == 1, ids
    versions = sorted(int(body["meta"]["versionId"]) for _, _, body in results)
    assert versions == list(range(1, CLIENTS + 1))  # every update one version, none lost
    assert _stored(db_url, "Patient") == list(ids)
