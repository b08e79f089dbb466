"""Paging never skips or repeats a resource while others write (property test).

Between page fetches, other clients create patients, update patients (fields that are not sort
keys) and delete some. Following ``next`` links must return every patient that existed at the
first page and was neither deleted nor changed in its sort key exactly once, and no patient twice.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from search_helpers import remove, store
from sqlalchemy import Engine, delete

from fhirhub.search.tables import INDEX_TABLES, resource_versions, resources
from fhirhub.services.search import search
from fhirhub.storage.mpi_models import mpi_blocks, mpi_records

BASE = "http://fhir.test/fhir"

write = st.tuples(st.sampled_from(["create", "update", "delete"]), st.integers(0, 10_000))


def _patient(pid: str, birth: int, family: str, gender: str = "female") -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "birthDate": f"{1950 + birth % 60}-0{1 + birth % 9}-1{birth % 10}",
        "name": [{"family": family}],
        "gender": gender,
    }


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for t in (*INDEX_TABLES.values(), mpi_blocks, mpi_records):
            conn.execute(delete(t))
        conn.execute(delete(resource_versions))
        conn.execute(delete(resources))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    births=st.lists(st.integers(0, 5), min_size=1, max_size=25),
    count=st.integers(1, 6),
    sort=st.sampled_from([None, "birthdate", "-birthdate", "_id", "-family", "birthdate,-_id"]),
    writes=st.lists(st.lists(write, max_size=3), max_size=12),
)
def test_paging_is_stable_under_writes(
    engine: Engine, births: list[int], count: int, sort: str | None, writes: list[list]
) -> None:
    _empty(engine)
    with engine.begin() as conn:
        for i, b in enumerate(births):
            store(conn, _patient(f"p{i}", b, f"F{b}"))
    alive = {f"p{i}" for i in range(len(births))}
    touched: set[str] = set()  # deleted during paging: may or may not be seen
    params = [("_count", str(count))] + ([("_sort", sort)] if sort else [])
    seen: list[str] = []
    serial = len(births)
    for step in range(len(births) + 2):
        with engine.connect() as conn:
            bundle = search(conn, res_type="Patient", params=params, base_url=BASE)
        seen.extend(e["resource"]["id"] for e in bundle.get("entry", []))
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            break
        params = parse_qsl(urlsplit(nxt[0]).query)
        with engine.begin() as conn:
            for op, n in writes[step] if step < len(writes) else []:
                if op == "create":
                    store(conn, _patient(f"new{serial}", n, f"F{n % 6}"))
                    serial += 1
                elif op == "update" and alive:
                    pid = sorted(alive)[n % len(alive)]
                    i = int(pid[1:])
                    store(conn, _patient(pid, births[i], f"F{births[i]}", gender="male"))
                elif op == "delete" and alive:
                    pid = sorted(alive)[n % len(alive)]
                    remove(conn, "Patient", pid)
                    alive.discard(pid)
                    touched.add(pid)
    assert len(seen) == len(set(seen)), "a patient was repeated"
    missing = alive - set(seen)
    assert not missing, f"skipped {sorted(missing)}"
    assert not [s for s in seen if s.startswith("new")], "created after the first page"
