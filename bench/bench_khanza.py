"""Benchmark: pulling a synthetic city's RSUD visits from SIMRS Khanza (issue 14).

The city's RSUD rows (``fhirhub.synth``) are loaded into a Khanza database on MariaDB
(127.0.0.1:3306, the schema subset of tests/khanza), then, in the same run:

- baseline: a plain ``SELECT`` of the same rows (``reg_periksa``, ``pasien``,
  ``diagnosa_pasien``, ``prosedur_pasien``, every column, fetched to the client): rows/s;
- read: the puller's reading alone (keyset batches, the rows of each visit, canonical JSON);
- keep: ``fhirhub pull khanza`` keeping every visit in the inbox of a fresh PostgreSQL database
  and moving the watermark, without processing (a broker's workers would);
- pull: the same with every visit also mapped and stored here (no broker), once with one
  transaction per visit and once with ``--unit`` visits per transaction (the default), and the
  resources counted after.

Medians of ``--rounds`` for the first two; keep and pull are one round each on a fresh database.
Visits per second, with the ratio to the baseline.

    .venv/bin/python bench/bench_khanza.py [--quick] [--persons 200000] [--rounds 3]
        [--pull-visits N]   # the pull of the last stage over the first N visits only
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "khanza"), str(ROOT / "bench")]

from common import arguments, fresh_database, header, median, ratio  # noqa: E402
from khanza_city import (  # noqa: E402
    city_rows,
    create_database,
    create_schema,
    drop_database,
    insert,
)

from adapters.rsud.khanza_db import read_batch, read_only_engine  # noqa: E402
from fhirhub.config import Settings  # noqa: E402
from fhirhub.ingest import pull as pulls  # noqa: E402
from fhirhub.ingest.service import IngestService  # noqa: E402
from fhirhub.storage.engine import make_engine  # noqa: E402

KHANZA_DB = os.environ.get("FHIRHUB_BENCH_KHANZA_DB", "fhirhub_khanza_bench")


def plain_select(url: str) -> float:
    engine = create_engine(url)
    started = time.perf_counter()
    with engine.connect() as conn:
        for table in ("reg_periksa", "pasien", "diagnosa_pasien", "prosedur_pasien"):
            conn.execute(text(f"SELECT * FROM {table}")).all()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def read_only(url: str, batch: int) -> tuple[float, int]:
    engine = read_only_engine(url)
    started, after, n = time.perf_counter(), "", 0
    from adapters.rsud.khanza_db import payload_of

    while True:
        with engine.connect() as conn:
            visits = read_batch(conn, after, batch)
        if not visits:
            break
        for v in visits:
            payload_of(v)
        n += len(visits)
        after = visits[-1]["reg_periksa"]["no_rawat"]
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, n


def pull_into(
    db: str, khanza: str, batch: int, process: bool, unit: int = 50
) -> tuple[float, int, dict[str, int]]:
    url = fresh_database(db)
    engine = make_engine(url, pool_size=2)
    settings = Settings(database_url=url, broker_url=None)
    service = IngestService.from_settings(engine, settings)
    started = time.perf_counter()
    # store=False: kept only, what a pull costs when a broker's workers do the mapping
    report = pulls.pull(service, "khanza", khanza, batch=batch, unit=unit, store=process)
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        resources: dict[str, int] = dict(
            conn.execute(text("SELECT res_type, count(*) FROM resources GROUP BY res_type")).all()
        )
    service.dispatcher.close()
    engine.dispose()
    return elapsed, report.read, resources


def line(what: str, rate: float, base: float, note: str = "") -> None:
    print(f"{what:44s} {rate:10.0f} visits/s   {ratio(rate, base)}   {note}".rstrip())


def main() -> None:
    a = arguments(
        __doc__.splitlines()[0],
        persons=(int, 200_000, "residents of the synthetic city"),
        rounds=(int, 3, "rounds of the read measurements"),
        batch=(int, 500, "visits per read"),
        pull_visits=(int, 0, "pull only the first N visits in the last stages (0: all)"),
        unit=(int, 50, "visits stored per transaction by the pull"),
    )
    persons = 5_000 if a.quick else a.persons
    t0 = time.perf_counter()
    rows = city_rows(persons, seed=1)
    visits = rows.visits
    if a.pull_visits:
        visits = visits[: a.pull_visits]
    khanza = create_database(KHANZA_DB)
    create_schema(khanza)
    insert(khanza, rows)
    print(
        f"city of {persons} persons: {len(rows.visits)} RSUD visits, "
        f"{len(rows.tables['diagnosa_pasien'])} diagnoses, {len(rows.tables['pasien'])} patients "
        f"(built and loaded into MariaDB in {time.perf_counter() - t0:.1f} s)"
    )
    try:
        n = len(rows.visits)
        base = [plain_select(khanza) for _ in range(a.rounds)]
        reads = [read_only(khanza, a.batch) for _ in range(a.rounds)]
        assert all(k == n for _, k in reads), "the puller did not read every visit"
        base_rate = n / median(base)
        read_rate = n / median([t for t, _ in reads])
        header(f"Khanza pull, {n} visits (medians of {a.rounds} rounds)")
        line("plain SELECT of the same rows", base_rate, base_rate)
        line("read: the puller reading (JSON payloads)", read_rate, base_rate)
        if a.pull_visits:  # a Khanza database with only these visits, for the pull stages
            drop_database(KHANZA_DB)
            khanza = create_database(KHANZA_DB)
            create_schema(khanza)
            insert(khanza, rows.of_visits({v["no_rawat"] for v in visits}))
        m = len(visits)
        kept_s, kept_n, _ = pull_into(a.db, khanza, a.batch, process=False)
        assert kept_n == m
        kept_rate = m / kept_s
        line("keep: into the inbox, watermark (1 round)", kept_rate, base_rate, f"({m} visits)")
        one_s, one_n, _ = pull_into(a.db, khanza, a.batch, process=True, unit=1)
        assert one_n == m
        line("pull, one transaction per visit (1 round)", m / one_s, base_rate, f"({m} visits)")
        pull_s, pull_n, resources = pull_into(a.db, khanza, a.batch, process=True, unit=a.unit)
        assert pull_n == m
        pull_rate = m / pull_s
        line(
            f"pull, {a.unit} visits per transaction (1 round)",
            pull_rate,
            base_rate,
            f"({m} visits)",
        )
        print(f"load average {os.getloadavg()[0]:.1f}")
        stored = sum(v for k, v in resources.items() if k != "Provenance")
        print(f"stored: {resources} ({stored / pull_s:.0f} resources/s without Provenance)")
        if resources.get("Encounter") != m:
            sys.exit(f"expected {m} Encounters, found {resources.get('Encounter')}")
    finally:
        drop_database(KHANZA_DB)


if __name__ == "__main__":
    main()
