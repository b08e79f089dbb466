"""Asynchronous ingest through broker and Celery workers, beside synchronous ``POST /fhir``.

The synthetic city's Puskesmas transaction Bundles, cut to ``--patients`` patients each (10:
about 200 entries, a clinic's upload), are sent twice, each time to a fresh PostgreSQL
database:

- synchronous: ``POST /fhir`` to ``fhirhub serve`` by ``--clients`` threads (the baseline); the
  Puskesmas adapter claims the Bundles, so they too are kept in the inbox, mapped and stored
  within the request;
- asynchronous: ``POST /ingest/puskesmas`` (kept in the inbox, 202) to a server whose jobs go
  through the broker (Redis by default) to ``--concurrency`` Celery worker processes, which map,
  normalise and store them; the clock stops when the last inbox message is processed.

Both print resources stored per second over the same Bundles; ``--rounds`` rounds of both,
interleaved, and their medians.

    .venv/bin/python bench/bench_async_ingest.py [--quick] [--persons 2000] [--concurrency 2]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from fhirhub.synth import demo_bundles


def post_all(port: int, path: str, bodies: list[bytes], clients: int) -> tuple[float, list[int]]:
    elapsed, responses = common.post_all(port, path, bodies, clients)
    return elapsed, [status for status, _ in responses]


def inbox_statuses(url: str) -> dict[str, int]:
    with common.connect(url) as conn:
        return dict(
            conn.execute("SELECT status, count(*) FROM inbox_messages GROUP BY status").fetchall()
        )


def provenance_count(url: str) -> int:
    with common.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM resources WHERE res_type = 'Provenance'")
        return int(row.fetchone()[0])


def inbox_left(url: str) -> tuple[int, int]:
    with common.connect(url) as conn:
        rows = dict(
            conn.execute("SELECT status, count(*) FROM inbox_messages GROUP BY status").fetchall()
        )
    return rows.get("received", 0) + rows.get("failed", 0), sum(rows.values())


def chunks(bundle: dict, patients: int) -> list[dict]:
    """A Puskesmas Bundle cut into Bundles of ``patients`` patients with all their records."""
    owner: dict[str, int] = {}
    groups: list[list[dict]] = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            owner[entry["fullUrl"]] = len(groups)
            groups.append([entry])
            continue
        ref = (resource.get("subject") or resource.get("patient") or {}).get("reference")
        groups[owner[ref]].append(entry)
    return [
        {**bundle, "entry": [e for g in groups[i : i + patients] for e in g]}
        for i in range(0, len(groups), patients)
    ]


def entries(bundles: list[bytes]) -> int:
    return sum(len(orjson.loads(b)["entry"]) for b in bundles)


def main() -> None:
    args = common.arguments(
        __doc__.splitlines()[0],
        persons=(int, 2000, "persons in the synthetic city"),
        concurrency=(int, 2, "Celery worker processes"),
        clients=(int, 2, "client threads"),
        broker=(str, "redis://127.0.0.1:6379/13", "broker URL (redis:// or amqp://)"),
        patients=(int, 10, "patients per Bundle (a clinic's upload)"),
        rounds=(int, 3, "rounds of both (medians reported)"),
    )
    persons = 400 if args.quick else args.persons
    if args.quick:
        args.rounds = 1
    city = list(demo_bundles(persons=persons, seed=1))
    reference = orjson.dumps(city[0])
    bodies = [orjson.dumps(c) for b in city[1:] for c in chunks(b, args.patients)]
    print(
        f"city of {persons} persons: {len(bodies)} Puskesmas Bundles of {args.patients} "
        f"patients, {entries(bodies)} entries"
    )

    sync_rates, async_rates = [], []
    for n in range(1, args.rounds + 1):
        print(f"round {n} of {args.rounds}")
        sync_rates.append(sync_round(args, reference, bodies))
        async_rates.append(async_round(args, reference, bodies))
    sync_rate, async_rate = statistics.median(sync_rates), statistics.median(async_rates)
    print(
        f"median of {args.rounds}: sync POST /fhir {sync_rate:.0f} resources/s, "
        f"async POST /ingest + workers {async_rate:.0f} resources/s; "
        f"async / sync = {async_rate / sync_rate:.2f}"
    )
    common.finish()


def sync_round(args: Any, reference: bytes, bodies: list[bytes]) -> float:
    """Synchronous ``POST /fhir`` on a fresh database: resources/s."""
    sync_url = common.fresh_database(args.db + "_sync")
    with common.server(sync_url, args.port, workers=args.workers):
        post_all(args.port, "/fhir", [reference], 1)
        base = common.count_resources(sync_url)
        elapsed, statuses = post_all(args.port, "/fhir", bodies, args.clients)
    provenance = provenance_count(sync_url)
    stored = common.count_resources(sync_url) - base - provenance
    bad = [s for s in statuses if s != 200]
    rate = stored / elapsed
    print(
        f"  sync  POST /fhir            {stored:>7} resources in {elapsed:6.1f} s = "
        f"{rate:7.0f} resources/s ({args.clients} clients, {args.workers} server workers; "
        f"inbox {inbox_statuses(sync_url)}; + {provenance} Provenance"
        f"{', ' + str(len(bad)) + ' failed' if bad else ''})"
    )
    if bad:
        common.failure(f"{len(bad)} of {len(statuses)} POST /fhir failed, first: {bad[0]}")
    return rate


def async_round(args: Any, reference: bytes, bodies: list[bytes]) -> float:
    """``POST /ingest/puskesmas`` -> broker -> Celery workers on a fresh database, until the
    inbox is empty: resources/s."""
    async_url = common.fresh_database(args.db + "_async")
    queue = f"fhirhub-bench-{os.getpid()}"
    env = {
        **os.environ,
        "FHIRHUB_DATABASE_URL": async_url,
        "FHIRHUB_BROKER_URL": args.broker,
        "FHIRHUB_BROKER_QUEUE": queue,
        "FHIRHUB_LOG_LEVEL": "WARNING",
    }
    saved = {k: os.environ.get(k) for k in ("FHIRHUB_BROKER_URL", "FHIRHUB_BROKER_QUEUE")}
    os.environ.update({k: env[k] for k in saved})
    celery = str(Path(sys.executable).with_name("celery"))
    try:
        with tempfile.TemporaryFile() as log:
            workers = subprocess.Popen(
                [celery, "-A", "fhirhub.jobs.celery_app", "worker", "-Q", queue, "--concurrency",
                 str(args.concurrency), "--loglevel", "WARNING", "--without-gossip",
                 "--without-mingle"],
                env=env, cwd=common.ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                with common.server(async_url, args.port, workers=args.workers):
                    post_all(args.port, "/fhir", [reference], 1)
                    base = common.count_resources(async_url)
                    started = time.perf_counter()
                    accepted, statuses = post_all(
                        args.port, "/ingest/puskesmas", bodies, args.clients
                    )
                    refused = [s for s in statuses if s != 202]
                    if refused:  # they never reach the inbox: waiting for them would not end
                        raise SystemExit(f"{len(refused)} Bundles refused, first: {refused[0]}")
                    while True:
                        left, total = inbox_left(async_url)
                        if left == 0 and total == len(bodies):
                            break
                        if workers.poll() is not None:
                            log.seek(0)
                            raise RuntimeError(log.read().decode(errors="replace")[-3000:])
                        time.sleep(0.2)
                    elapsed = time.perf_counter() - started
            finally:
                os.killpg(workers.pid, signal.SIGTERM)
                workers.wait(60)
    finally:
        for k, v in saved.items():  # the sync round's server must not see the broker
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    provenance = provenance_count(async_url)
    stored = common.count_resources(async_url) - base - provenance
    rate = stored / elapsed
    print(
        f"  async POST /ingest + worker {stored:>7} resources in {elapsed:6.1f} s = "
        f"{rate:7.0f} resources/s (202s sent in {accepted:.1f} s; {args.concurrency} "
        f"worker processes; inbox {inbox_statuses(async_url)}; + {provenance} Provenance)"
    )
    return rate


if __name__ == "__main__":
    main()
