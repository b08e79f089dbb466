"""Transaction-bundle ingest over HTTP, beside PostgreSQL's COPY of the same resources.

Bundles of 100 entries (Puskesmas visits: Patient with NIK, Encounter, vital-sign and lab
Observations with LOINC, Condition with ICD-10, Immunization, linked by urn:uuid) are POSTed to
/fhir by a few client threads. The baseline, measured in the same run and rounds, is COPY of the
same resources (JSON, ids and references resolved) into a bare table: the storage ceiling.

    .venv/bin/python bench/bench_ingest.py [--quick] [--clients 2] [--rounds 5]
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

TARGET = 2000.0


def post_bundles(port: int, bodies: list[bytes], clients: int) -> float:
    """POST every body to /fhir; return the elapsed seconds (any non-200 ends the run)."""
    elapsed, responses = common.post_all(port, "/fhir", bodies, clients)
    failures = [f"{status}: {head!r}" for status, head in responses if status != 200]
    if failures:
        raise SystemExit(f"{len(failures)} bundles failed, first: {failures[0]}")
    return elapsed


def copy_baseline(url: str, rows: list[tuple[str, str, str]]) -> float:
    """COPY the rows into a fresh bare table in one transaction; return the seconds."""
    with common.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (res_type text, res_id text, content jsonb)")
        conn.commit()
        start = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY bench_copy (res_type, res_id, content) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return elapsed


def main() -> None:
    args = common.arguments(
        __doc__.splitlines()[0],
        clients=(int, 2, "concurrent client connections"),
        rounds=(int, 5, "measured rounds (median reported)"),
        bundles=(int, 30, "bundles of 100 entries per round"),
    )
    if args.quick:
        args.rounds, args.bundles = 3, 6
    url = common.db_url(args.db) if args.keep_db else common.fresh_database(args.db)
    rng = random.Random(20260101)
    per_bundle = 100
    rounds = []
    for _ in range(args.rounds):
        bundles = [common.transaction_bundle(rng, per_bundle) for _ in range(args.bundles)]
        bodies = [orjson.dumps(b) for b in bundles]
        rows = [
            (r["resourceType"], r["id"], orjson.dumps(r).decode())
            for b in bundles
            for r in common.resolved_resources(b)
        ]
        rounds.append((bodies, rows))
    warmup = [orjson.dumps(common.transaction_bundle(rng, per_bundle)) for _ in range(4)]

    common.header("bench_ingest: transaction bundles of 100 entries over HTTP")
    print(common.environment_note())
    print(
        f"server: {args.workers} workers; clients: {args.clients}; "
        f"{args.rounds} rounds of {args.bundles} bundles ({args.bundles * per_bundle} resources)"
    )
    before = common.count_resources(url)
    http_rates, copy_rates = [], []
    with common.server(url, args.port, args.workers, args.profile) as srv:
        post_bundles(args.port, warmup, args.clients)
        meter = common.CpuMeter(srv, args.db)
        print(f"\n{'round':>5} {'HTTP res/s':>12} {'COPY res/s':>12} {'HTTP/COPY':>10}")
        for i, (bodies, rows) in enumerate(rounds, 1):
            n = len(rows)
            with meter:
                http_rate = n / post_bundles(args.port, bodies, args.clients)
            copy_rate = n / copy_baseline(url, rows)
            http_rates.append(http_rate)
            copy_rates.append(copy_rate)
            share = common.ratio(http_rate, copy_rate)
            print(f"{i:>5} {http_rate:>12,.0f} {copy_rate:>12,.0f} {share:>10}")
        print("      " + meter.line(n, "resources (last round)"))
    stored = common.count_resources(url) - before
    expected = (len(warmup) + sum(len(b) for b, _ in rounds)) * per_bundle
    med_http, med_copy = common.median(http_rates), common.median(copy_rates)
    print(
        f"\nmedian: HTTP ingest {med_http:,.0f} resources/s; COPY baseline {med_copy:,.0f} "
        f"resources/s; ratio {common.ratio(med_http, med_copy).strip()}"
    )
    print(f"stored {stored:,} resources (expected {expected:,})")
    print("ingest " + common.verdict(med_http, TARGET, "resources/s", "HTTP ingest"))
    if stored != expected:
        common.failure(f"resource count mismatch: stored {stored:,}, expected {expected:,}")
    common.finish()


if __name__ == "__main__":
    main()
