"""FHIR search at city scale on PostgreSQL, beside the same queries written directly in SQL.

Builds (or reuses, with ``--reuse``) a database of a generated city (``bench/search_city.py``:
64,000 patients, 2 visits each, 1,344,018 resources), loaded with COPY: every resource indexed by
``fhirhub.search.indexing.index_rows``, exactly the rows the write path stores. Then, for each
query of issue 3, runs ``fhirhub.services.search.search`` in process (criteria to SQL, one
keyset page, bodies, the Bundle dict) ``--runs`` times with varying values, and the same query
as hand-written SQL over the index tables (the floor), interleaved, and prints p50/p95 of both.
Before timing, each query's hand SQL must return the rows fhirhub returns (and not nothing) on
the first draws, or the script refuses to time it; a p50 over 10 ms makes it exit non-zero.
Both sides plan each statement for its values (no generic plans of prepared statements).
Finally it measures ingest through the write path (``Writer``) with full indexing beside the
same writes with indexing switched off.

    .venv/bin/python bench/bench_search.py [--patients 64000] [--reuse] [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import search_city  # noqa: E402

from fhirhub.search.indexing import index_rows  # noqa: E402

PG_SERVER = os.environ.get("FHIRHUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
DB = os.environ.get("FHIRHUB_SEARCH_BENCH_DB", "fhirhub_search_bench")
BASE = "http://bench/fhir"
NIK = "https://fhir.kemkes.go.id/id/nik"
LOINC = "http://loinc.org"

COLUMNS = {
    "search_string": ("value", "exact"),
    "search_token": ("system", "code", "text"),
    "search_date": ("low", "high", "span"),
    "search_number": ("low", "high"),
    "search_quantity": ("low", "high", "system", "code", "unit"),
    "search_reference": ("target_type", "target_id", "url"),
    "search_uri": ("value",),
    "search_composite": (
        "c1_system",
        "c1_code",
        "c2_system",
        "c2_code",
        "c2_low",
        "c2_high",
        "c2_dlow",
        "c2_dhigh",
    ),
}


def url(db: str = DB) -> str:
    return f"{PG_SERVER}/{db}"


# --- loading -----------------------------------------------------------------------------------


def load(patients: int) -> dict[str, float]:
    import psycopg
    from sqlalchemy import create_engine, inspect

    from fhirhub.storage.engine import migrate

    with psycopg.connect(url("postgres"), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{DB}"')
    migrate(url().replace("postgresql://", "postgresql+psycopg://"))
    eng = create_engine(url().replace("postgresql://", "postgresql+psycopg://"))
    insp = inspect(eng)
    tables = ["resources", "resource_versions", *COLUMNS]
    index_ddl = []
    with psycopg.connect(url(), autocommit=True) as c:
        for t in tables:
            for ix in insp.get_indexes(t):
                if ix.get("unique") or ix["name"] in {
                    x["name"] for x in insp.get_unique_constraints(t)
                }:
                    continue  # backs a constraint: kept
                ddl = c.execute(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (ix["name"],)
                ).fetchone()[0]
                index_ddl.append(ddl)
                c.execute(f'DROP INDEX "{ix["name"]}"')
            c.execute(f"ALTER TABLE {t} DISABLE TRIGGER ALL")
    eng.dispose()

    t0 = time.perf_counter()
    index_s = 0.0
    n = 0
    lu0 = int(datetime(2025, 12, 31, tzinfo=UTC).timestamp() * 1e6)
    with psycopg.connect(url()) as c:
        cur = c.cursor()
        # one COPY at a time per connection: stage the rows, copy them per chunk
        res_rows: list[tuple[Any, ...]] = []
        ver_rows: list[tuple[Any, ...]] = []
        idx_rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in COLUMNS}

        def flush() -> None:
            with cur.copy(
                "COPY resources (pk, res_type, res_id, version, last_updated, deleted) FROM STDIN"
            ) as cp:
                for row in res_rows:
                    cp.write_row(row)
            with cur.copy(
                "COPY resource_versions (resource_pk, version, res_type, res_id, last_updated,"
                " method, deleted, content) FROM STDIN"
            ) as cp:
                for row in ver_rows:
                    cp.write_row(row)
            for t, rows in idx_rows.items():
                if rows:
                    with cur.copy(
                        f"COPY {t} (resource_pk, res_type, param, {', '.join(COLUMNS[t])})"
                        " FROM STDIN"
                    ) as cp:
                        for row in rows:
                            cp.write_row(row)
                    rows.clear()
            res_rows.clear()
            ver_rows.clear()
            c.commit()

        for res in search_city.city(patients):
            n += 1
            lu = lu0 + n * 1000
            res["meta"] = {
                **res.get("meta", {}),
                "versionId": "1",
                "lastUpdated": datetime.fromtimestamp(lu / 1e6, UTC).isoformat(),
            }
            s = time.perf_counter()
            rows = index_rows(res)
            index_s += time.perf_counter() - s
            rt = res["resourceType"]
            res_rows.append((n, rt, res["id"], 1, lu, False))
            ver_rows.append((n, 1, rt, res["id"], lu, "POST", False, orjson.dumps(res).decode()))
            for t, rs in rows.items():
                cols = COLUMNS[t]
                idx_rows[t].extend((n, rt, r["param"], *[r[k] for k in cols]) for r in rs)
            if n % 20000 == 0:
                flush()
                rate = n / (time.perf_counter() - t0)
                print(f"  loaded {n:,} resources ({rate:,.0f}/s)", flush=True)
        flush()
        c.execute("SELECT setval(pg_get_serial_sequence('resources', 'pk'), %s)", (n,))
        c.commit()
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    with psycopg.connect(url(), autocommit=True) as c:
        for t in tables:
            c.execute(f"ALTER TABLE {t} ENABLE TRIGGER ALL")
        for ddl in index_ddl:
            c.execute(ddl)
        c.execute("VACUUM ANALYZE")
    return {
        "resources": n,
        "load_s": load_s,
        "index_us": index_s / n * 1e6,
        "indexes_s": time.perf_counter() - t1,
    }


# --- queries -----------------------------------------------------------------------------------


def queries(patients: int) -> list[tuple[str, Callable[[random.Random], Any], str, Any]]:
    """(name, params for fhirhub from a rng, SQL floor, its parameters from the same draw)."""
    res = "resource_versions v JOIN resources r ON v.resource_pk = r.pk AND v.version = r.version"

    def a(rng: random.Random) -> tuple[str, list[tuple[str, str]], dict[str, Any]]:
        i = rng.randrange(patients)
        return (
            "Patient",
            [("identifier", f"{NIK}|{search_city.nik(i)}")],
            {"nik": search_city.nik(i)},
        )

    sql_a = (
        f"SELECT v.content FROM {res} WHERE r.pk IN (SELECT resource_pk FROM search_token t"
        " WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.code = %(nik)s"
        f" AND t.system = '{NIK}') AND NOT r.deleted LIMIT 51"
    )

    def b(rng: random.Random) -> tuple[str, list[tuple[str, str]], dict[str, Any]]:
        i = rng.randrange(patients)
        p = search_city.person(i, 0)[0]
        family = p["name"][0]["family"].lower()
        return (
            "Patient",
            [("name", family), ("birthdate", p["birthDate"])],
            {"name": family + "%", "lo": _day(p["birthDate"])[0], "hi": _day(p["birthDate"])[1]},
        )

    sql_b = (
        f"SELECT v.content FROM {res} WHERE r.pk IN (SELECT resource_pk FROM search_string s"
        " WHERE s.res_type = 'Patient' AND s.param = 'name' AND s.value LIKE %(name)s)"
        " AND r.pk IN (SELECT resource_pk FROM search_date d WHERE d.res_type = 'Patient'"
        " AND d.param = 'birthdate' AND d.low >= %(lo)s AND d.high <= %(hi)s)"
        " AND NOT r.deleted ORDER BY r.pk LIMIT 51"
    )

    def c(rng: random.Random) -> tuple[str, list[tuple[str, str]], dict[str, Any]]:
        i = rng.randrange(patients)
        return (
            "Observation",
            [
                ("patient", f"Patient/p{i}"),
                ("code", f"{LOINC}|29463-7"),
                ("date", "ge2024-01-01"),
                ("date", "lt2025-07-01"),
            ],
            {"pid": f"p{i}", "lo": _day("2024-01-01")[0], "hi": _day("2025-07-01")[0]},
        )

    sql_c = (
        f"SELECT v.content FROM {res} WHERE r.pk IN (SELECT resource_pk FROM"
        " search_reference f WHERE f.res_type = 'Observation' AND f.param = 'subject'"
        " AND f.target_type = 'Patient' AND f.target_id = %(pid)s)"
        " AND r.pk IN (SELECT resource_pk FROM search_token t WHERE t.res_type = 'Observation'"
        f" AND t.param = 'code' AND t.code = '29463-7' AND t.system = '{LOINC}')"
        " AND r.pk IN (SELECT resource_pk FROM search_date d WHERE d.res_type = 'Observation'"
        " AND d.param = 'date' AND d.high >= %(lo)s AND d.low < %(hi)s)"
        " AND NOT r.deleted ORDER BY r.pk LIMIT 51"
    )

    def d(rng: random.Random) -> tuple[str, list[tuple[str, str]], dict[str, Any]]:
        day = rng.randrange(0, 300)
        start = datetime(2024, 1, 1, tzinfo=UTC).timestamp() + day * 86400
        s = datetime.fromtimestamp(start, UTC).date().isoformat()
        e = datetime.fromtimestamp(start + 7 * 86400, UTC).date().isoformat()
        pkm = rng.choice(search_city.PUSKESMAS)
        return (
            "Encounter",
            [
                ("date", f"ge{s}"),
                ("date", f"lt{e}"),
                ("service-provider", f"Organization/{pkm}"),
                ("_include", "Encounter:subject"),
            ],
            {"lo": _day(s)[0], "hi": _day(e)[0], "pkm": pkm},
        )

    # the floor knows encounters last under a day: their date range scan is bounded on both sides
    sql_d = (
        "WITH m AS (SELECT d.resource_pk AS pk FROM search_date d WHERE d.res_type = 'Encounter'"
        " AND d.param = 'date' AND d.low >= %(lo)s - 86400000000 AND d.low < %(hi)s"
        " AND d.high >= %(lo)s AND d.resource_pk IN (SELECT resource_pk FROM search_reference f"
        " WHERE f.res_type = 'Encounter' AND f.param = 'service-provider'"
        " AND f.target_type = 'Organization' AND f.target_id = %(pkm)s)"
        " ORDER BY d.resource_pk LIMIT 51),"
        " inc AS (SELECT p.pk FROM search_reference f JOIN resources p ON p.res_type = 'Patient'"
        " AND p.res_id = f.target_id WHERE f.resource_pk IN (SELECT pk FROM m)"
        " AND f.res_type = 'Encounter' AND f.param = 'subject' AND f.target_type = 'Patient')"
        f" SELECT v.content FROM {res}"
        " WHERE r.pk IN (SELECT pk FROM m UNION SELECT pk FROM inc)"
    )

    def e(rng: random.Random) -> tuple[str, list[tuple[str, str]], dict[str, Any]]:
        pkm = rng.choice(search_city.PUSKESMAS)
        return (
            "Patient",
            [("_has:Condition:subject:code", "A90"), ("organization", f"Organization/{pkm}")],
            {"pkm": pkm},
        )

    sql_e = (
        f"SELECT v.content FROM {res} WHERE r.pk IN (SELECT o.resource_pk"
        " FROM search_reference o WHERE o.res_type = 'Patient' AND o.param = 'organization'"
        " AND o.target_type = 'Organization' AND o.target_id = %(pkm)s AND EXISTS (SELECT 1"
        " FROM resources p JOIN search_reference f ON f.target_id = p.res_id"
        " AND f.res_type = 'Condition' AND f.param = 'subject' AND f.target_type = 'Patient'"
        " JOIN search_token t ON t.resource_pk = f.resource_pk AND t.res_type = 'Condition'"
        " AND t.param = 'code' AND t.code = 'A90' WHERE p.pk = o.resource_pk OFFSET 0)"
        " ORDER BY o.resource_pk LIMIT 51) ORDER BY r.pk"
    )
    return [
        ("(a) Patient by NIK", a, sql_a, None),
        ("(b) Patient by name + birthdate", b, sql_b, None),
        ("(c) Observation by patient + LOINC + date range", c, sql_c, None),
        ("(d) Encounter by week + Puskesmas, _include=Encounter:subject", d, sql_d, None),
        ("(e) Patient _has:Condition:subject:code=A90 + organization", e, sql_e, None),
    ]


def _day(d: str) -> tuple[int, int]:
    from fhirhub.search.values import date_range

    r = date_range(d)
    assert r
    return r


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


PAGE = 50  # fhirhub's default page; the hand SQL reads one row more (LIMIT 51), as fhirhub does
CHECK_DRAWS = 20  # draws of each query compared before it is timed
TARGET_P50_MS = 10.0


def _found(bundle: dict[str, Any]) -> tuple[set[tuple[str, str]], int]:
    entries = bundle.get("entry", [])
    keys = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries}
    return keys, sum(1 for e in entries if e["search"]["mode"] == "match")


def check_agreement(conn: Any, raw: Any, name: str, make: Any, sql: str) -> int:
    """Refuse to time a query whose hand-written SQL and fhirhub disagree.

    For the first ``CHECK_DRAWS`` draws (the ones the timed runs start with), fhirhub's page
    (matches and includes) must be the rows of the hand SQL; when there are more than a page
    of matches, the SQL reads one row more, so fhirhub's rows must be all but that one. A query
    whose SQL finds nothing in every draw is refused too: its baseline would time an empty
    result. Returns how many draws found something.
    """
    from fhirhub.services.search import search

    rng = random.Random(7)
    found_any = 0
    for k in range(CHECK_DRAWS):
        res_type, params, sql_params = make(rng)
        ours, matches = _found(search(conn, res_type=res_type, params=params, base_url=BASE))
        conn.rollback()
        rows = [orjson.loads(r[0]) for r in raw.execute(sql, sql_params, prepare=False)]
        floor = {(r["resourceType"], r["id"]) for r in rows}
        agree = ours == floor or (matches == PAGE and ours < floor)
        if not agree:
            sys.exit(
                f"{name}: fhirhub and the hand-written SQL disagree on draw {k} ({params}):"
                f" {len(ours)} rows from fhirhub, {len(floor)} from SQL; only fhirhub:"
                f" {sorted(ours - floor)[:3]}, only SQL: {sorted(floor - ours)[:3]}."
                " Not timing it: fix the SQL (or fhirhub) first."
            )
        found_any += bool(floor)
    if not found_any:
        sys.exit(
            f"{name}: the hand-written SQL found nothing in {CHECK_DRAWS} draws;"
            " its baseline would time an empty result. Not timing it."
        )
    return found_any


def run_queries(patients: int, runs: int) -> list[str]:
    """Check every query, then time it; returns the queries whose p50 missed the target."""
    import psycopg
    from sqlalchemy import create_engine

    from fhirhub.services.search import search

    eng = create_engine(url().replace("postgresql://", "postgresql+psycopg://"))
    raw = psycopg.connect(url(), autocommit=True)
    with eng.connect() as conn:
        for name, make, sql, _ in queries(patients):
            found = check_agreement(conn, raw, name, make, sql)
            print(f"{name}: fhirhub = hand SQL on {CHECK_DRAWS} draws ({found} non-empty)")
    missed = []
    print(f"\n{'query':64} {'fhirhub p50/p95 ms':>20} {'SQL p50/p95 ms':>18} {'hits':>6}")
    for name, make, sql, _ in queries(patients):
        rng = random.Random(7)
        ours: list[float] = []
        floor: list[float] = []
        hits: list[int] = []
        with eng.connect() as conn:
            for k in range(runs + 10):
                res_type, params, sql_params = make(rng)
                t = time.perf_counter()
                bundle = search(conn, res_type=res_type, params=params, base_url=BASE)
                dt = time.perf_counter() - t
                s = time.perf_counter()
                rows = raw.execute(sql, sql_params, prepare=False).fetchall()
                rows = [orjson.loads(r[0]) for r in rows]
                ds = time.perf_counter() - s
                if k >= 10:  # warm-up excluded
                    ours.append(dt * 1000)
                    floor.append(ds * 1000)
                    hits.append(len(bundle.get("entry", [])))
                conn.rollback()
        print(
            f"{name:64} {pct(ours, 50):9.2f} /{pct(ours, 95):7.2f}"
            f" {pct(floor, 50):8.2f} /{pct(floor, 95):7.2f} {statistics.mean(hits):6.1f}",
            flush=True,
        )
        if pct(ours, 50) > TARGET_P50_MS:
            missed.append(f"{name}: p50 {pct(ours, 50):.2f} ms > {TARGET_P50_MS:g} ms")
    raw.close()
    eng.dispose()
    return missed


# --- ingest through the write path --------------------------------------------------------------


def ingest(patients: int, batch: int = 5, rounds: int = 3) -> None:
    """Writes of new patients' records (21 resources each) through Writer, committed per batch
    of ``batch`` patients; with indexing and with index_rows returning nothing, ``rounds``
    times each, interleaved (medians). At most 5,000 patients a run."""
    from sqlalchemy import create_engine

    import fhirhub.services.writes as writes
    from fhirhub.services.writes import Writer
    from fhirhub.storage.repository import ResourceRepository

    eng = create_engine(url().replace("postgresql://", "postgresql+psycopg://"))
    # Ids no earlier run used: with --reuse, the same ids again would be identical updates,
    # which store nothing (that is what the write path is for) and measure nothing.
    start = 10_000_000 + (int(time.time()) % 10_000) * 10_000
    rates: dict[str, list[float]] = {"with indexing": [], "without indexing": []}
    each = patients // rounds
    for _ in range(rounds):  # interleaved, so both meet the same machine and cache
        for label, indexer in (("with indexing", index_rows), ("without indexing", lambda r: {})):
            writes.index_rows = indexer  # type: ignore[attr-defined]
            n = 0
            t = time.perf_counter()
            for b in range(0, each, batch):
                with eng.begin() as conn:
                    w = Writer(ResourceRepository(conn))
                    for res in search_city.city(batch, start=start + b):
                        if res["resourceType"] == "Organization":
                            continue
                        w.update(res["resourceType"], res["id"], res, validated=True)
                        n += 1
                    w.flush()
            rates[label].append(n / (time.perf_counter() - t))
            start += each
    results = {label: statistics.median(r) for label, r in rates.items()}
    writes.index_rows = index_rows  # type: ignore[attr-defined]
    eng.dispose()
    w_, wo = results["with indexing"], results["without indexing"]
    print(
        f"\ningest through Writer (update-as-create, no validation, {patients} patients x 21,"
        f" {rounds} interleaved rounds, medians):"
        f"\n  with full indexing   {w_:8,.0f} resources/s"
        f"\n  without indexing     {wo:8,.0f} resources/s   (indexing costs {1 - w_ / wo:.0%})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=64_000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--reuse", action="store_true", help="query the existing database")
    ap.add_argument("--ingest-patients", type=int, default=500)
    args = ap.parse_args()
    print(f"search benchmark, PostgreSQL database {DB}, {os.cpu_count()} CPUs")
    if not args.reuse:
        print(f"loading a city of {args.patients:,} patients ...", flush=True)
        stats = load(args.patients)
        print(
            f"loaded {stats['resources']:,} resources in {stats['load_s']:.0f} s"
            f" (index_rows {stats['index_us']:.1f} µs/resource), indexes built in"
            f" {stats['indexes_s']:.0f} s"
        )
    missed = run_queries(args.patients, args.runs)
    print(
        f"\ntarget p50 <= {TARGET_P50_MS:g} ms: "
        + ("MET by every query" if not missed else "MISSED by " + "; ".join(missed))
    )
    if args.ingest_patients:
        ingest(args.ingest_patients)
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
