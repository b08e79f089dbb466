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

Then (``--updates 1``, the default) the same for updates, which the issue's benchmark does not
send but a Puskesmas does (a citizen's record sent again with each visit): each group's
Patients again, a new phone each, as transaction Bundles of 10 PUTs, in each mode to the records
that mode created.

    .venv/bin/python bench/bench_mpi_index_cost.py [--quick] [--groups 24] [--size 10] [--updates 1]
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
        updates=(int, 1, "1: measure update Bundles too, 0: creates only"),
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

    created: dict[str, list[list[dict[str, Any]]]] = {"on": [], "off": []}

    def write(mode: str, group: list[dict[str, Any]], keep: bool = True) -> float:
        """CPU seconds (this process and its backend) to write ``group`` in ``mode``; the
        Patients it created are kept (``created``), as sent with their ids, for the updates."""
        conn = conns[mode]
        backend = conn.connection.driver_connection.info.backend_pid
        answers = []
        c0 = time.process_time() + common._cpu_of(backend)
        for bundle in group:
            with conn.begin():
                w = Writer(ResourceRepository(conn), patient_index=index if mode == "on" else False)
                answers.append(
                    transaction.process(w, bundle, base_url="http://bench/fhir", get=None)
                )
                w.finish(200)
        cpu = time.process_time() + common._cpu_of(backend) - c0
        if keep:
            created[mode].append(
                [
                    {**entry["resource"], "id": answer["response"]["location"].split("/")[1]}
                    for bundle, out in zip(group, answers, strict=True)
                    for entry, answer in zip(bundle["entry"], out["entry"], strict=True)
                    if entry["resource"]["resourceType"] == "Patient"
                ]
            )
        return cpu

    def updates(patients: list[dict[str, Any]], g: int) -> list[dict[str, Any]]:
        """Transaction Bundles of 10 PUTs: each Patient with a new phone (the same in both
        modes)."""
        puts = [
            {
                "resource": {
                    **p,
                    "telecom": [{"system": "phone", "value": f"08129{g:03d}{i:04d}"}],
                },
                "request": {"method": "PUT", "url": f"Patient/{p['id']}"},
            }
            for i, p in enumerate(patients)
        ]
        return [
            {"resourceType": "Bundle", "type": "transaction", "entry": puts[k : k + 10]}
            for k in range(0, len(puts), 10)
        ]

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
    updated: dict[str, list[float]] = {"on": [], "off": []}
    for g in range(args.groups if args.updates else 0):
        for mode in ("on", "off") if g % 2 else ("off", "on"):
            group = updates(created[mode][g + 1], g)
            updated[mode].append(write(mode, group, keep=False) / len(group) * 1000)
    for conn in conns.values():
        conn.close()
    for engine in engines.values():
        engine.dispose()
    report(f"{args.groups} groups of {args.size} Bundles (100 entries, 10 new Patients each)", cpu)
    if args.updates:
        title = "updates: the same groups' Patients again, a new phone each (10 PUTs a Bundle)"
        report(title, updated)
    common.finish()


def report(title: str, cpu: dict[str, list[float]]) -> None:
    """The median CPU a Bundle in each mode (ms), and the median of the per-group ratios."""
    on, off = common.median(cpu["on"]), common.median(cpu["off"])
    ratio = common.median([b / a for a, b in zip(cpu["on"], cpu["off"], strict=True)])
    print(
        f"{title}\n"
        f"CPU per Bundle (Python + PostgreSQL): index on {on:.2f} ms, off (baseline) "
        f"{off:.2f} ms; the index {on - off:.2f} ms\n"
        f"median of per-group ratios off/on: {ratio:.3f}"
    )


if __name__ == "__main__":
    main()
