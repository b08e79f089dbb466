"""The patient index's cost per Bundle, in process: CPU of Python and PostgreSQL (issue 11).

``bench_mpi_ingest.py`` judges the index over HTTP, where the rate without the index swings
between runs by more than the index costs (session 11: 1,586-2,291 resources/s). This counts CPU
instead, on one connection to each of two fresh databases: the same transaction Bundles (100
entries, one Patient in ten, as bench_ingest.py makes them) are written through the Writer with
the index on to one database and off to the other, in groups that alternate which goes first.
Per group and mode: the CPU seconds of this process and of its PostgreSQL backend. Reported:
the median CPU per Bundle of each mode and the median of the per-group ratios off/on (the index
off is the baseline, in the same run). No target of its own: the issue's line (0.8) is
bench_mpi_ingest.py's; this tells what the index itself costs.

    .venv/bin/python bench/bench_mpi_index_cost.py [--quick] [--groups 24] [--size 10]
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def main() -> None:
    args = common.arguments(
        __doc__.splitlines()[0],
        groups=(int, 24, "measured groups of Bundles per mode"),
        size=(int, 10, "Bundles per group"),
    )
    if args.quick:
        args.groups, args.size = 4, 5
    from fhirhub.services import transaction
    from fhirhub.services.patient_index import PatientIndex
    from fhirhub.services.writes import Writer
    from fhirhub.storage.engine import make_engine
    from fhirhub.storage.repository import ResourceRepository

    common.header("bench_mpi_index_cost: the patient index's CPU per Bundle, in process")
    print(common.environment_note())
    rng = random.Random(20260101)
    bundles = [common.transaction_bundle(rng, 100) for _ in range(args.size * (args.groups + 1))]
    index = PatientIndex()
    engines = {
        mode: make_engine(common.fresh_database(f"{args.db}_mpi_cost_{mode}"))
        for mode in ("on", "off")
    }
    conns = {mode: engine.connect() for mode, engine in engines.items()}

    def write(mode: str, group: list[dict[str, Any]]) -> float:
        """CPU seconds (this process and its backend) to write ``group`` in ``mode``."""
        conn = conns[mode]
        backend = conn.connection.driver_connection.info.backend_pid
        c0 = time.process_time() + common._cpu_of(backend)
        for bundle in group:
            with conn.begin():
                w = Writer(ResourceRepository(conn), patient_index=index if mode == "on" else False)
                transaction.process(w, bundle, base_url="http://bench/fhir", get=None)
                w.finish(200)
        return time.process_time() + common._cpu_of(backend) - c0

    # as the server's workers do once started: without it, a full collection walking the
    # Bundles held here (150 ms) fell into one mode's group or the other, by chance
    from fhirhub.runtime import tune_collector

    tune_collector()
    warmup = bundles[: args.size]
    for mode in conns:
        write(mode, warmup)
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    for g in range(args.groups):
        group = bundles[(g + 1) * args.size : (g + 2) * args.size]
        for mode in ("on", "off") if g % 2 else ("off", "on"):
            cpu[mode].append(write(mode, group) / len(group) * 1000)
    for conn in conns.values():
        conn.close()
    for engine in engines.values():
        engine.dispose()
    on, off = common.median(cpu["on"]), common.median(cpu["off"])
    ratio = common.median([b / a for a, b in zip(cpu["on"], cpu["off"], strict=True)])
    print(
        f"{args.groups} groups of {args.size} Bundles (100 entries, 10 new Patients each)\n"
        f"CPU per Bundle (Python + PostgreSQL): index on {on:.2f} ms, off (baseline) "
        f"{off:.2f} ms; the index {on - off:.2f} ms\n"
        f"median of per-group ratios off/on: {ratio:.3f}"
    )
    common.finish()


if __name__ == "__main__":
    main()
