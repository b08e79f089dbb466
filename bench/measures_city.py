"""A synthetic city for the indicator benchmark, loaded into PostgreSQL by COPY and kept.

The city is the one ``tests/measures/city_store.py`` gives the truth test — every record of every
facility, local codes mapped, the patient index as Person resources with the true demographics —
but stored without HTTP or the write path (200,000 persons are about 5 million resources): each
resource given its id and ``meta`` by ``writes._with_identity`` and serialised by ``dumps_str`` as
the Writer does, ``urn:uuid`` references rewritten to the ids given, COPYed into ``resources``
and ``resource_versions``. Not written: the search index (the indicators read views, not search
parameters), Provenance, audit rows. The generator's truth is kept beside the database, in a
JSON file, so that a later run needs neither the generator nor the load; the database's COMMENT
records what was built (``--rebuild-db`` builds it again).
"""

from __future__ import annotations

import json
import multiprocessing
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "measures"))

BUILD_VERSION = "views2-measures-v2"  # change when what is stored changes
LAST_UPDATED = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs
# resource i of the load is stamped LAST_UPDATED + i * STEP_US: the city written over some hours
# (5 million resources: 14 h), so that only the last few minutes' are within a view refresh's
# overlap, as on a server after a day's ingest
STEP_US = 10_000
TABLES = ("resources", "resource_versions")
_URN = re.compile(r'"(urn:uuid:[0-9a-f-]{36})"')
_CITY: Any = None  # the SynthCity, inherited by the forked loader processes


def signature(persons: int, seed: int) -> str:
    return f"{BUILD_VERSION} persons={persons} seed={seed}"


def truth_file(dbname: str) -> Path:
    return Path("/tmp") / f"{dbname}-truth.json"


def built(dbname: str, sig: str) -> bool:
    return common.built_as(dbname, sig) and truth_file(dbname).exists()


def _stored(
    bundle: dict[str, Any], prefix: str, counter: list[int], stamp: Any
) -> Iterator[tuple[str, str, int, str]]:
    """(type, id, last_updated, stored JSON text) of each entry of a city_store Bundle;
    ``counter`` is [ids given, resources], ``stamp(n)`` the last_updated of the n-th."""
    from fhirhub.model.json import dumps_str
    from fhirhub.services.writes import _with_identity

    given: dict[str, str] = {}
    entries = bundle["entry"]
    ids = []
    for entry in entries:
        res = entry["resource"]
        if entry["request"]["method"] == "PUT":
            res_id = res["id"]
        else:
            counter[0] += 1
            res_id = f"{prefix}{counter[0]:x}"
            given[entry["fullUrl"]] = f'"{res["resourceType"]}/{res_id}"'
        ids.append(res_id)
    for entry, res_id in zip(entries, ids, strict=True):
        res = entry["resource"]
        counter[1] += 1
        lu = stamp(counter[1])
        text = dumps_str(_with_identity(res, res_id, 1, lu))
        if given and "urn:uuid:" in text:
            text = _URN.sub(lambda m: given[m[1]], text)
        yield res["resourceType"], res_id, lu, text


def _load_part(args: tuple[str, int, int, int, int]) -> tuple[int, float]:
    """Worker ``part`` of ``parts``: its persons' records and encounters, COPYed in."""
    url, part, parts, pk_base, first = args
    from city_store import clinical_bundles

    sc = _CITY
    t0 = time.perf_counter()
    # pk and last_updated: this worker's own range, so that the workers never collide
    counter = [0, pk_base]
    rows: list[tuple[Any, ...]] = []
    n = 0
    with common.connect(url) as conn, conn.cursor() as cur:

        def flush() -> None:
            with cur.copy(
                "COPY resources (pk, res_type, res_id, version, last_updated, deleted, content)"
                " FROM STDIN"
            ) as cp:
                for row in rows:
                    cp.write_row(row)
            with cur.copy(
                "COPY resource_versions (resource_pk, version, res_type, res_id, last_updated,"
                " method, deleted, content) FROM STDIN"
            ) as cp:
                for pk, res_type, res_id, _, lu, _, text in rows:
                    cp.write_row((pk, 1, res_type, res_id, lu, "PUT", False, text))
            conn.commit()
            rows.clear()

        def stamp(pk: int) -> int:  # the workers' resources interleaved in time
            return LAST_UPDATED + (first + (pk - pk_base) * parts + part) * STEP_US

        for bundle in clinical_bundles(sc, part, parts):
            for res_type, res_id, lu, text in _stored(bundle, f"w{part}-", counter, stamp):
                rows.append((counter[1], res_type, res_id, 1, lu, False, text))
                n += 1
            if len(rows) >= 20000:
                flush()
                if n % 500000 < 20000:
                    rate = n / (time.perf_counter() - t0)
                    print(f"  worker {part}: {n:,} resources ({rate:,.0f}/s)", flush=True)
        flush()
    return n, time.perf_counter() - t0


def build(dbname: str, persons: int, seed: int, workers: int = 2) -> dict[str, Any]:
    """A fresh migrated database holding the city; the truth written beside it."""
    global _CITY
    from city_store import person_resources

    from fhirhub.synth import truth
    from fhirhub.synth.generate import build as build_city
    from fhirhub.synth.generate import reference_bundle

    t0 = time.perf_counter()
    print(f"generating the city: {persons:,} persons, seed {seed}", flush=True)
    sc = build_city(persons, seed)
    t_city = time.perf_counter() - t0
    expected = truth.compute(sc)["indicators"]
    truth_file(dbname).write_text(json.dumps(expected))
    t_truth = time.perf_counter() - t0 - t_city
    print(f"  city {t_city:,.0f} s, truth {t_truth:,.0f} s", flush=True)
    url = common.fresh_database(dbname)
    t1 = time.perf_counter()
    saved = common.drop_for_bulk_load(url, TABLES)
    plain = common._libpq(url)
    # reference data and the patient index first (pks 1..), then the records, in workers
    counter = [0, 0]
    head = [reference_bundle(sc)]
    people = person_resources(sc)
    head += [{"entry": [{"resource": p, "request": {"method": "PUT"}} for p in people]}]
    with common.connect(plain) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY resources (pk, res_type, res_id, version, last_updated, deleted, content)"
            " FROM STDIN"
        ) as cp:
            texts = []
            for bundle in head:
                for res_type, res_id, lu, text in _stored(
                    bundle, "h-", counter, lambda n: LAST_UPDATED + n * STEP_US
                ):
                    cp.write_row((counter[1], res_type, res_id, 1, lu, False, text))
                    texts.append((counter[1], res_type, res_id, lu, text))
        with cur.copy(
            "COPY resource_versions (resource_pk, version, res_type, res_id, last_updated,"
            " method, deleted, content) FROM STDIN"
        ) as cp:
            for pk, res_type, res_id, lu, text in texts:
                cp.write_row((pk, 1, res_type, res_id, lu, "PUT", False, text))
        conn.commit()
    stride = 1_000_000_000
    _CITY = sc
    parts = [(plain, w, workers, stride * (w + 1), counter[1] + 1) for w in range(workers)]
    print(f"loading {dbname}: {workers} processes", flush=True)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(_load_part, parts)
    _CITY = None
    stored = counter[1] + sum(r[0] for r in results)
    t_load = time.perf_counter() - t1
    print(f"  {stored:,} resources in {t_load:,.0f} s; indexing", flush=True)
    t2 = time.perf_counter()
    common.restore_after_bulk_load(url, dbname, TABLES, saved, signature(persons, seed))
    t_index = time.perf_counter() - t2
    print(f"  indexes and ANALYZE in {t_index:,.0f} s", flush=True)
    return {"resources": stored, "city_s": t_city, "load_s": t_load, "index_s": t_index}


def ensure(dbname: str, persons: int, seed: int, rebuild: bool) -> tuple[str, dict[str, Any]]:
    """The database's URL and the truth's indicators, built only when not built before."""
    sig = signature(persons, seed)
    if not rebuild and built(dbname, sig):
        print(f"using the database built before: {dbname} ({sig})")
    else:
        build(dbname, persons, seed)
    return common.db_url(dbname), json.loads(truth_file(dbname).read_text())
