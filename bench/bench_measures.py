"""Benchmark: the whole indicator catalogue over a synthetic city, checked against its truth.

Builds a city of N persons, loads it as a perfect server holds it (tests/measures/city_store.py:
every record, local codes mapped, the patient index as Person resources), then times, in the
same run:

- baseline: reading every current resource body the views read (the scan alone);
- the view rows (all catalogue views, in memory today: ``services/measures/source.view_rows``);
- the 22 measures with all strata (``evaluate_many``: rows, persons, rules, reports);

and prints whether every indicator, group and stratum equals the generator's truth.

    .venv/bin/python bench/bench_measures.py [--persons 3000] [--seed 11] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "measures"))

from city_store import bundles  # noqa: E402
from truth_shape import restricted, shape  # noqa: E402

from fhirhub.search.tables import resources  # noqa: E402
from fhirhub.services.load import load_bundles  # noqa: E402
from fhirhub.services.measures import evaluate_many  # noqa: E402
from fhirhub.services.measures.catalogue import load_catalogue  # noqa: E402
from fhirhub.services.measures.source import view_rows  # noqa: E402
from fhirhub.storage.engine import make_engine, migrate  # noqa: E402
from fhirhub.synth import truth  # noqa: E402
from fhirhub.synth.generate import build  # noqa: E402

MEASURES = ROOT / "measures"
PERIOD = [("periodStart", "2025-01-01"), ("periodEnd", "2025-12-31")]


def _timed(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--database-url", default=None)
    a = ap.parse_args()
    url = a.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench_measures.sqlite3"
    migrate(url)
    engine = make_engine(url)
    t = time.perf_counter()
    sc = build(a.persons, a.seed)
    expected = truth.compute(sc)["indicators"]
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    loaded = load_bundles(engine, bundles(sc))
    t_load = time.perf_counter() - t
    cat = load_catalogue(MEASURES)
    types = sorted({v["resource"] for v in cat.views.values()})

    def scan() -> int:
        n = 0
        with engine.connect() as conn:
            for res_type in types:
                stmt = select(resources.c.content).where(
                    resources.c.res_type == res_type, resources.c.deleted.is_(False)
                )
                for (content,) in conn.execute(stmt.execution_options(yield_per=1000)):
                    orjson.loads(content)
                    n += 1
        return n

    def rows() -> int:
        with engine.connect() as conn:
            return sum(sum(1 for _ in view_rows(conn, v)) for v in cat.views.values())

    def evaluate() -> list:
        with engine.connect() as conn:
            return evaluate_many(conn, MEASURES, None, PERIOD)

    t_scan, n_bodies = _timed(scan, a.runs)
    t_rows, n_rows = _timed(rows, a.runs)
    t_eval, reports = _timed(evaluate, a.runs)
    wrong = []
    for r in reports:  # type: ignore[union-attr]
        mid = r["measure"].split("|")[0].rsplit("/", 1)[-1]
        want = expected.get(mid)
        if want is not None and restricted(shape(r), want) != want:
            wrong.append(mid)
    print(f"city: {a.persons} persons, seed {a.seed}, {engine.dialect.name}")
    print(f"build + truth {t_build:.1f} s; load {t_load:.1f} s ({loaded.stored} resources)")
    print(f"baseline: scan of {n_bodies} bodies        {t_scan:8.2f} s (median of {a.runs})")
    print(f"view rows ({n_rows} rows, in memory)   {t_rows:8.2f} s  ({t_rows / t_scan:.1f}x)")
    print(f"22 measures, all strata           {t_eval:8.2f} s  ({t_eval / t_scan:.1f}x)")
    print("every indicator equals the truth" if not wrong else f"DIFFERENT from truth: {wrong}")
    engine.dispose()
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
