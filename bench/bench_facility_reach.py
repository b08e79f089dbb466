"""What a facility's reach costs: the same searches as a facility client (the access filter of
``fhirhub.search.access`` inside the SQL) and as an unbounded client, on PostgreSQL.

Builds (or reuses, with ``--reuse``) the generated city of ``bench/bench_search.py`` in its own
database (``fhirhub_bench_facility``; 17 Puskesmas, each patient's Patient and Encounters
naming its home Puskesmas), then runs ``fhirhub.services.search.search`` in process for each
query, interleaving the two clients, and prints the p50 of each and their ratio. The facility
is ``Organization/pkm01`` (1/17 of the city).

    .venv/bin/python bench/bench_facility_reach.py [--patients 16000] [--reuse] [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("FHIRHUB_SEARCH_BENCH_DB", "fhirhub_bench_facility")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_search  # noqa: E402

from fhirhub.auth import binding  # noqa: E402
from fhirhub.services import everything, search  # noqa: E402

Query = Callable[[random.Random], tuple[str, list[tuple[str, str]]]]


def queries(patients: int) -> list[tuple[str, Query]]:
    def own_patient(rng: random.Random) -> int:
        return rng.randrange(patients // 17) * 17  # home pkm01: i % 17 == 0 (p0, p17, ...)

    return [
        ("Patient page", lambda rng: ("Patient", [("_count", "50")])),
        (
            "Patient page, accurate total",
            lambda rng: ("Patient", [("_count", "50"), ("_total", "accurate")]),
        ),
        (
            "Encounter by date",
            lambda rng: ("Encounter", [("date", f"ge{rng.randint(2023, 2025)}-06-01")]),
        ),
        (
            "Observation by code",
            lambda rng: ("Observation", [("code", "http://loinc.org|85354-9"), ("_count", "50")]),
        ),
        (
            "Observation of a patient",
            lambda rng: ("Observation", [("subject", f"Patient/p{own_patient(rng)}")]),
        ),
        (
            "Encounter + _include Patient",
            lambda rng: (
                "Encounter",
                [("_count", "20"), ("_include", "Encounter:subject:Patient")],
            ),
        ),
        (
            "Observation chained to name",
            lambda rng: (
                "Observation",
                [("subject:Patient.name", rng.choice(["La", "Wa", "Andi"])), ("_count", "20")],
            ),
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=16000)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    if not args.reuse:
        print(bench_search.load(args.patients))
    from sqlalchemy import create_engine

    engine = create_engine(bench_search.url().replace("postgresql://", "postgresql+psycopg://"))
    access = binding.reads_of("Organization/pkm01", "puskesmas")
    rng = random.Random(7)
    print(f"{'query':34} {'unbounded p50':>14} {'facility p50':>13} {'ratio':>6} {'found':>6}")
    with engine.connect() as conn:
        for name, make in queries(args.patients):
            times: dict[str, list[float]] = {"none": [], "facility": []}
            found = 0
            for i in range(args.runs):
                res_type, params = make(rng)
                for who in ("none", "facility") if i % 2 else ("facility", "none"):
                    t0 = time.perf_counter()
                    bundle = search.search(
                        conn,
                        res_type=res_type,
                        params=params,
                        base_url="http://x/fhir",
                        access=access if who == "facility" else None,
                    )
                    times[who].append(time.perf_counter() - t0)
                    if who == "facility":
                        found = len(bundle.get("entry", []))
                conn.rollback()
            a, b = statistics.median(times["none"]), statistics.median(times["facility"])
            print(f"{name:34} {a * 1e3:11.2f} ms {b * 1e3:10.2f} ms {b / a:6.2f} {found:6}")
        # $everything of one of its patients, and the check of a read
        pids = [f"p{k * 17}" for k in range(args.runs)]
        for label, run in (
            ("$everything (set, count)", _everything),
            ("read check (reaches)", _reaches),
        ):
            base, bounded = [], []
            for pid in pids:
                t0 = time.perf_counter()
                run(conn, pid, None)
                base.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                run(conn, pid, access)
                bounded.append(time.perf_counter() - t0)
                conn.rollback()
            a, b = statistics.median(base), statistics.median(bounded)
            print(f"{label:34} {a * 1e3:11.2f} ms {b * 1e3:10.2f} ms {b / a:6.2f}")
    print(f"load average at end: {os.getloadavg()}")
    engine.dispose()


def _everything(conn: Any, pid: str, access: Any) -> None:
    everything.everything(conn, patient_id=pid, params=[], base_url="http://x/fhir", access=access)


def _reaches(conn: Any, pid: str, access: Any) -> None:
    if access is None:
        conn.exec_driver_sql(
            "SELECT 1 FROM resources WHERE res_type='Patient' AND res_id=%s", (pid,)
        )
    else:
        assert access.reaches(conn, "Patient", pid)


if __name__ == "__main__":
    main()
