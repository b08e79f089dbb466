"""``fhirhub mpi rebuild`` of 200,000 records on PostgreSQL, beside its floor (issue 11).

The store is built as ``bench_mpi_match.py`` builds it (the same population, COPYed with the
write path's own functions), once, into a template database kept between runs
(``--rebuild-db`` builds it again): 200,000 Patient records (about 181,800 persons, one in ten
with a second record from another facility) stored while the index was off: no blocking keys,
no Persons. Each round copies the template into a fresh database and times
``fhirhub.services.patient_index.rebuild`` (what ``fhirhub mpi rebuild`` runs) end to end, in
this process, with its phases: reading every Patient and extracting features, estimating the
model (EM, no labels) while the blocking keys are written, and placing every record in batches
of 250, as ``fhirhub mpi rebuild`` does by default (Person, Provenance and review Task
resources through the Writer). Then, on the same database now indexed, a second rebuild
(``--keep-model``: the records stay where they are), unless ``--once``.

Baseline in the same round, on the same database: the floor of any rebuild, reading every
Patient body (``store.all_patient_bodies``) and computing ``extract`` + ``blocking_keys`` of
each. Target: the rebuild of 200,000 records in at most 5 minutes.

    .venv/bin/python bench/bench_mpi_rebuild.py [--quick] [--records 200000] [--rounds 1]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_mpi_match as population
import common

TARGET_S = 300.0


def copy_database(template: str, name: str) -> str:
    import psycopg

    with psycopg.connect(common._libpq(common.db_url("postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return common.db_url(name)


def floor(url: str) -> tuple[float, int, int]:
    """Seconds to read every Patient and extract its features and blocking keys."""
    from fhirhub.mpi import store
    from fhirhub.mpi.features import blocking_keys, extract
    from fhirhub.services.patient_index import _as_dict  # as rebuild parses each body
    from fhirhub.storage.engine import make_engine

    engine = make_engine(url)
    t0 = time.perf_counter()
    n = keys = 0
    with engine.connect() as conn:
        for _, body in store.all_patient_bodies(conn):
            keys += len(blocking_keys(extract(_as_dict(body))))
            n += 1
    engine.dispose()
    return time.perf_counter() - t0, n, keys


def _clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    return time.perf_counter(), time.process_time()


class Phases:
    """Times of the rebuild's phases, read from calls it makes (the functions are wrapped,
    not changed: each wrapper calls the original)."""

    def __init__(self) -> None:
        from fhirhub.mpi import store
        from fhirhub.services import patient_index

        self.marks: dict[str, tuple[float, float]] = {}
        self.batches: list[tuple[float, float]] = []
        self._restore: list[tuple[Any, str, Any]] = []
        self._wrap(patient_index, "train", "train")
        self._wrap(store, "clear_blocks", "clear blocks")
        self._wrap(store, "insert_blocks", "insert blocks")

    def _wrap(self, module: Any, attr: str, label: str) -> None:
        original = getattr(module, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.marks.setdefault(f"{label} start", _clock())
            try:
                return original(*args, **kwargs)
            finally:
                self.marks[f"{label} end"] = _clock()

        setattr(module, attr, timed)
        self._restore.append((module, attr, original))

    def progress(self, done: int, total: int) -> None:
        self.batches.append(_clock())
        if len(self.batches) % 40 == 0:
            wall, cpu = (b - a for a, b in zip(self.batches[0], self.batches[-1], strict=True))
            print(
                f"    placed {done:,} of {total:,} records ({wall:.0f} s wall, {cpu:.0f} s CPU "
                "since the first batch)",
                flush=True,
            )

    def close(self) -> None:
        for module, attr, original in self._restore:
            setattr(module, attr, original)


def _backend_cpu(dbname: str) -> float:
    """CPU seconds of every PostgreSQL backend connected to ``dbname`` (all ours: the database
    was created for this round)."""
    with common.connect(common.db_url(dbname)) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
        ]
    return sum(common._cpu_of(p) for p in pids)


def timed_rebuild(
    url: str, retrain: bool
) -> tuple[float, float, float, dict[str, tuple[float, float]], Any]:
    """(wall s, CPU s of this process, CPU s of PostgreSQL, phases as (wall, CPU), report)."""
    from fhirhub.services.patient_index import rebuild
    from fhirhub.storage.engine import make_engine

    dbname = url.rsplit("/", 1)[1]
    engine = make_engine(url)
    phases = Phases()
    pg0 = _backend_cpu(dbname)
    t0 = _clock()
    try:
        report = rebuild(engine, retrain=retrain, progress=phases.progress)
        t1 = _clock()
        pg = _backend_cpu(dbname) - pg0
    finally:
        phases.close()
        engine.dispose()
    m = phases.marks

    def span(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return b[0] - a[0], b[1] - a[1]

    # The keys are written on their own connection while the model is estimated: the placing
    # starts when both are done.
    blocks_end = m.get("insert blocks end", m.get("clear blocks end", t0))
    placing = max(blocks_end, m.get("train end", blocks_end))
    last = phases.batches[-1] if phases.batches else placing
    first = min(m.get("train start", blocks_end), m.get("clear blocks start", blocks_end))
    out = {
        "read + extract": span(t0, first),
        "train model": span(m.get("train start", t0), m.get("train end", t0)),
        "write blocking keys": span(m.get("clear blocks start", blocks_end), blocks_end),
        "place records": span(placing, last),
        "orphans, end": span(last, t1),
    }
    if phases.batches:
        steps = [
            span(a, b) for a, b in zip([placing, *phases.batches], phases.batches, strict=False)
        ]
        out["batch (median)"] = (
            statistics.median(s[0] for s in steps),
            statistics.median(s[1] for s in steps),
        )
    return t1[0] - t0[0], t1[1] - t0[1], pg, out, report


def _print_phases(phases: dict[str, tuple[float, float]]) -> None:
    print(f"    {'phase':24} {'wall s':>8} {'CPU s (this process)':>21}")
    for name, (wall, cpu) in phases.items():
        print(f"    {name:24} {wall:8.1f} {cpu:21.1f}")


def counts(url: str) -> str:
    with common.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM mpi_records), "
            "(SELECT count(DISTINCT person_id) FROM mpi_records), "
            "(SELECT count(*) FROM resources WHERE res_type = 'Person' AND NOT deleted), "
            "(SELECT count(*) FROM resources WHERE res_type = 'Task'), "
            "(SELECT count(*) FROM resources WHERE res_type = 'Provenance')"
        ).fetchone()
    return (
        f"{row[0]:,} records in {row[1]:,} persons; resources written: {row[2]:,} Person, "
        f"{row[3]:,} review Task, {row[4]:,} Provenance"
    )


def main() -> None:
    flags = {f: f in sys.argv for f in ("--rebuild-db", "--once")}
    for f, on in flags.items():
        if on:
            sys.argv.remove(f)
    args = common.arguments(
        __doc__.splitlines()[0],
        records=(int, 200_000, "Patient records in the store (persons: records / 1.1)"),
        rounds=(int, 1, "measured rounds (median reported)"),
        seed=(int, 12, "seed of the population"),
    )
    if args.quick:
        args.records, args.rounds = 20_000, 1
    persons = round(args.records / (1 + population.DUPLICATE_SHARE))
    template = f"{args.db}_mpi_rebuild_tpl_{args.records}"
    common.header("bench_mpi_rebuild: fhirhub mpi rebuild against reading and extracting alone")
    print(common.environment_note())
    population.ensure(template, persons, args.seed, False, flags["--rebuild-db"])
    work = f"{args.db}_mpi_rebuild_run"
    totals: list[float] = []
    floors: list[float] = []
    again: list[float] = []
    cpus: list[float] = []
    floor_cpus: list[float] = []
    for r in range(args.rounds):
        url = copy_database(template, work)
        c0 = time.process_time()
        f_s, n, keys = floor(url)
        floors.append(f_s)
        floor_cpus.append(time.process_time() - c0)
        print(
            f"\nround {r + 1}: {n:,} records; floor (read every Patient + extract + blocking keys,"
            f" {keys:,} keys): {f_s:.1f} s wall, {floor_cpus[-1]:.1f} s CPU in Python"
        )
        load0 = os.getloadavg()[0]
        total, cpu, pg, phases, report = timed_rebuild(url, retrain=True)
        totals.append(total)
        cpus.append(cpu + pg)
        print(
            f"  rebuild from an unindexed store: {total:.1f} s wall, CPU {cpu:.1f} s in Python + "
            f"{pg:.1f} s in PostgreSQL ({report.records:,} records placed, {report.moved:,} moved; "
            f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f})"
        )
        _print_phases(phases)
        print("  " + counts(url))
        if not flags["--once"]:
            total2, cpu2, pg2, phases2, report2 = timed_rebuild(url, retrain=False)
            again.append(total2)
            print(
                f"  rebuild again, indexed store, model kept: {total2:.1f} s wall, CPU "
                f"{cpu2:.1f} s in Python + {pg2:.1f} s in PostgreSQL ({report2.moved:,} moved)"
            )
            _print_phases(phases2)
    t, fl = statistics.median(totals), statistics.median(floors)
    print(
        f"\nmedian over {args.rounds} round(s): rebuild {t:.1f} s for {args.records:,} records "
        f"({args.records / t:,.0f} records/s); floor {fl:.1f} s ({args.records / fl:,.0f} "
        f"records/s); rebuild / floor {t / fl:.1f}x"
    )
    c, fc = statistics.median(cpus), statistics.median(floor_cpus)
    print(
        f"CPU (this process + its PostgreSQL backends): rebuild {c:.1f} s, floor {fc:.1f} s "
        f"(Python only); on an idle 2-core machine the rebuild would take about its CPU time"
    )
    if again:
        print(f"rebuild of the indexed store (model kept): {statistics.median(again):.1f} s")
    met = t <= TARGET_S * args.records / 200_000
    print(
        f"{'MET' if met else 'MISSED'} (target <= {TARGET_S:.0f} s for 200,000 records; machine "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    if not met:
        common.failure(f"rebuild took {t:.0f} s > {TARGET_S * args.records / 200_000:.0f} s")
    common.finish()


if __name__ == "__main__":
    main()
