"""Concurrent writes of one citizen's records from 16 clients end in one Person (issue 11).

Each client has its own HTTP connection to a real server with two worker processes, and all
send at the same moment a Patient of the same citizen under their own facility's record
number. Without the index's locks, each would see no candidate and start a Person of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from mpi_invariants import check

from fhirhub.storage.engine import make_engine
from tests.api.conftest import LiveServer
from tests.api.factories import patient
from tests.api.test_concurrency import _all_at_once

CLIENTS = 16
MRN = "https://fhirhub.baubaukota.go.id/sid/mrn/"


# The citizen's NIK, the same NIK one digit off (a clerk's typo), and none: writers of records
# held to a NIK lock the name, date and address keys shared, those of records without one
# exclusive, and NIKs one typo apart share a key of their neighbourhood (patient_index._process).
NIKS = {
    "one NIK": ["7472014501900001"],
    "a NIK, a typo of it, none": ["7472014501900001", "7472014501900011", None],
}


@pytest.mark.slow
@pytest.mark.parametrize("niks", list(NIKS.values()), ids=list(NIKS))
def test_sixteen_clients_writing_one_citizen_make_one_person(
    live_server_factory: Callable[..., LiveServer], db_url: str, niks: list[str | None]
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writer at a time: nothing to race")
    server = live_server_factory(workers=2)
    requests = []
    for i in range(CLIENTS):
        nik = niks[i % len(niks)]
        body = patient(nik or "", telecom=[{"system": "phone", "value": "081234567890"}])
        if nik is None:
            body["identifier"] = []
        body["identifier"].append({"system": f"{MRN}clinic{i:02}", "value": f"RM-{i}"})
        requests.append(
            ("POST", "/fhir/Patient", json.dumps(body).encode(),
             {"Content-Type": "application/fhir+json"})
        )  # fmt: skip
    results = _all_at_once(server, requests)
    assert [r[0] for r in results] == [201] * CLIENTS, [r[2] for r in results if r[0] != 201]
    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            persons = check(conn)
    finally:
        engine.dispose()
    assert len(persons) == 1
    assert len(next(iter(persons.values()))) == CLIENTS
