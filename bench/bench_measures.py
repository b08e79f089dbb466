"""Benchmark: the whole indicator catalogue over a large synthetic city on PostgreSQL, checked
against the generator's truth, beside the ways an analyst would get the same numbers.

The city (default 200,000 persons, seed 1) is loaded by COPY and kept between runs
(``bench/measures_city.py``; database ``fhirhub_bench_views2_measures``). Then, in one run:

1. the catalogue's views are brought current (``fhirhub.views.materialize.refresh``; the first
   run builds them, later runs find nothing changed);
2. **fhirhub**: the 22 Measures with all strata (``evaluate_many``: rows read from the view
   tables, persons, rules, reports), ``--runs`` times; target at most 10 s (issue 12); every
   indicator, group and stratum compared with the generator's truth;
3. **hand-written SQL** over the view tables for two indicators (spm-12, imm-02: numerator per
   kelurahan), interleaved with (2), and compared with fhirhub's strata;
4. **the analyst without fhirhub**: ``fhirpy`` paging ``GET /fhir/{type}?_count=1000`` from a real
   server (2 workers) into ``pandas`` (``json_normalize``), for the resource types the two
   indicators need (Patient, Person, Observation, Immunization): ``--pages`` pages of each are
   timed and the whole download extrapolated to each type's count (the bench database has no
   search index, so the analyst cannot filter by code or date here; with one they would
   download fewer Observations).

    .venv/bin/python bench/bench_measures.py [--persons 200000] [--seed 1] [--runs 3]
        [--pages 20] [--rebuild-db] [--port 8097]

Needs the bench extra for pandas (``python3 dev.py bench-install``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "measures"))

import common  # noqa: E402
import measures_city  # noqa: E402
from truth_shape import restricted, shape  # noqa: E402

MEASURES = ROOT / "measures"
START, END = "2025-01-01", "2025-12-31"
PERIOD = [("periodStart", START), ("periodEnd", END)]
TARGET_S = 10.0
HIV = ["75622-1", "7917-8", "68961-2"]
MR = ["04", "05"]


def _local(col: str) -> str:
    """The WITA date of a FHIR date/dateTime text column (one without a zone is local already)."""
    return (
        f"(CASE WHEN length({col}) = 10 THEN {col}::date "
        f"WHEN {col} ~ '(Z|[+-][0-9][0-9]:[0-9][0-9])$' "
        f"THEN ({col}::timestamptz AT TIME ZONE 'Asia/Makassar')::date "
        f"ELSE {col}::timestamp::date END)"
    )


# Persons as this city holds them: every Patient record linked by one Person that carries the
# person's demographics (a city where records stand alone would need the Patients' too).
PERSONS_SQL = """
person AS (
  SELECT key, max(birth_date)::date AS birth, max(kelurahan)::jsonb ->> 0 AS kel
  FROM view_measure_person WHERE active IS NOT FALSE GROUP BY key
), link AS (
  SELECT DISTINCT patient, key FROM view_measure_person
  WHERE patient IS NOT NULL AND active IS NOT FALSE
), resident AS (
  SELECT key, birth, kel FROM person WHERE kel ~ '^7472[0-9]{6}$'
)"""

SPM12_SQL = f"""
WITH {PERSONS_SQL}, tested AS (
  SELECT DISTINCT l.key FROM view_measure_observation o JOIN link l ON l.patient = o.subject
  WHERE o.codes::jsonb ?| %(codes)s AND {_local("o.effective")} BETWEEN %(start)s AND %(end)s
)
SELECT r.kel, count(*) FROM resident r JOIN tested t USING (key)
WHERE r.birth <= %(end)s GROUP BY r.kel
"""

IMM02_SQL = f"""
WITH {PERSONS_SQL}, dead AS (
  SELECT l.key, min({_local("p.deceased_at")}) AS death
  FROM view_measure_patient p JOIN link l ON l.patient = p.key
  WHERE p.deceased_at IS NOT NULL GROUP BY l.key
), infant AS (
  SELECT key, kel, CASE WHEN to_char(birth, 'MM-DD') = '02-29'
    THEN make_date(extract(year FROM birth)::int + 1, 3, 1)
    ELSE (birth + interval '1 year')::date END AS bday
  FROM resident
)
SELECT i.kel, count(*) FROM infant i LEFT JOIN dead d USING (key)
WHERE i.bday BETWEEN %(start)s AND %(end)s AND (d.death IS NULL OR d.death >= i.bday)
  AND EXISTS (
    SELECT 1 FROM view_measure_immunization m JOIN link l ON l.patient = m.patient
    WHERE l.key = i.key AND m.cvx::jsonb ?| %(codes)s AND {_local("m.occurrence")} < i.bday)
GROUP BY i.kel
"""


def _mid(report: dict[str, Any]) -> str:
    return str(report["measure"].split("|")[0].rsplit("/", 1)[-1])


def _numerators_by_kelurahan(report: dict[str, Any]) -> dict[str, int]:
    out = {}
    for stratifier in report["group"][0]["stratifier"]:
        if stratifier["code"][0]["coding"][0]["code"] != "kelurahan":
            continue
        for stratum in stratifier.get("stratum", []):
            for pop in stratum["population"]:
                if pop["code"]["coding"][0]["code"] == "numerator" and pop["count"]:
                    out[stratum["value"]["coding"][0]["code"]] = pop["count"]
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values)


def materialise(url: str) -> float:
    from fhirhub.services.measures.catalogue import load_catalogue
    from fhirhub.storage.engine import make_engine
    from fhirhub.views.materialize import refresh

    engine = make_engine(url)
    t = time.perf_counter()
    for _, view in sorted(load_catalogue(MEASURES).views.items()):
        t1 = time.perf_counter()
        done = refresh(engine, view)
        print(
            f"  {done.table}: {done.rows:,} rows, {done.resources:,} resources read"
            f"{' (built)' if done.rebuilt else ''} in {time.perf_counter() - t1:,.1f} s",
            flush=True,
        )
    engine.dispose()
    common.analyze(url)
    return time.perf_counter() - t


def evaluate(url: str) -> list[dict[str, Any]]:
    from fhirhub.services.measures import evaluate_many
    from fhirhub.storage.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return evaluate_many(conn, MEASURES, None, PERIOD)
    finally:
        engine.dispose()


def hand_sql(url: str, sql: str, codes: list[str]) -> dict[str, int]:
    with common.connect(url) as conn:
        conn.execute("SET jit = off")
        rows = conn.execute(sql, {"codes": codes, "start": START, "end": END}).fetchall()
    return {k: int(n) for k, n in rows}


def truth_check(reports: list[dict[str, Any]], expected: dict[str, Any]) -> list[str]:
    wrong = []
    for r in reports:
        want = expected.get(_mid(r))
        if want is not None and restricted(shape(r), want) != want:
            wrong.append(_mid(r))
    return wrong


def analyst(url: str, port: int, pages: int) -> tuple[float, list[str]]:
    """fhirpy paging into pandas: the seconds the whole download would take, extrapolated."""
    import pandas as pd
    from fhirpy import SyncFHIRClient

    with common.connect(url) as conn:
        counts = dict(
            conn.execute(
                "SELECT res_type, count(*) FROM resources WHERE NOT deleted "
                "AND res_type IN ('Patient', 'Person', 'Observation', 'Immunization') "
                "GROUP BY res_type"
            ).fetchall()
        )
    lines = []
    total = 0.0
    with common.server(url, port, workers=2) as srv:
        client = SyncFHIRClient(srv.fhir)
        for res_type in ("Patient", "Person", "Observation", "Immunization"):
            got: list[dict[str, Any]] = []
            t = time.perf_counter()
            for res in client.resources(res_type).limit(1000):
                got.append(res.serialize())
                if len(got) >= pages * 1000:
                    break
            t_fetch = time.perf_counter() - t
            t = time.perf_counter()
            frame = pd.json_normalize(got)
            t_frame = time.perf_counter() - t
            n = counts.get(res_type, 0)
            whole = (t_fetch + t_frame) * n / max(len(got), 1)
            total += whole
            lines.append(
                f"  {res_type:13} {len(got):>9,} of {n:>10,} in {t_fetch:6.1f} s + pandas "
                f"{t_frame:5.1f} s ({len(frame.columns)} columns) -> all: {whole:8,.0f} s"
            )
    return total, lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pages", type=int, default=20, help="fhirpy pages of 1,000 per type")
    ap.add_argument("--port", type=int, default=8097)
    ap.add_argument("--db", default="fhirhub_bench_views2_measures")
    ap.add_argument("--rebuild-db", action="store_true")
    ap.add_argument("--skip-analyst", action="store_true")
    ap.add_argument(
        "--prepare-only", action="store_true", help="build the city and its views, time nothing"
    )
    a = ap.parse_args()
    common.header(f"indicator catalogue, {a.persons:,} persons, seed {a.seed}")
    url, expected = measures_city.ensure(a.db, a.persons, a.seed, a.rebuild_db)
    with common.connect(url) as conn:
        n_res = conn.execute("SELECT count(*) FROM resources").fetchone()[0]
    print(f"{n_res:,} resources; load average {os.getloadavg()[0]:.1f}")
    print("views brought current:", flush=True)
    t_mat = materialise(url)
    print(f"  all views current in {t_mat:,.1f} s", flush=True)
    if a.prepare_only:
        return

    def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out

    t_eval: list[float] = []
    t_spm12: list[float] = []
    t_imm02: list[float] = []
    reports: list[dict[str, Any]] = []
    spm12: dict[str, int] = {}
    imm02: dict[str, int] = {}
    for i in range(a.runs):
        s, spm12 = timed(lambda: hand_sql(url, SPM12_SQL, HIV))
        t_spm12.append(s)
        s, imm02 = timed(lambda: hand_sql(url, IMM02_SQL, MR))
        t_imm02.append(s)
        s, reports = timed(lambda: evaluate(url))
        t_eval.append(s)
        print(
            f"  round {i + 1}: catalogue {t_eval[-1]:.1f} s, spm-12 SQL {t_spm12[-1]:.2f} s, "
            f"imm-02 SQL {t_imm02[-1]:.2f} s (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    by_id = {_mid(r): r for r in reports}
    wrong = truth_check(reports, expected)
    sql_agrees = (
        spm12 == _numerators_by_kelurahan(by_id["spm-12"])
        and imm02 == _numerators_by_kelurahan(by_id["imm-02"])
        and bool(spm12)
        and bool(imm02)
    )
    med = _median(t_eval)
    print()
    print(f"fhirhub, 22 measures, all strata      {med:8.2f} s (median of {a.runs})")
    same = "same numbers as fhirhub" if sql_agrees else "DIFFERENT"
    print(
        f"hand SQL over the view tables: spm-12 {_median(t_spm12):8.2f} s, "
        f"imm-02 {_median(t_imm02):.2f} s ({same})"
    )
    if not a.skip_analyst:
        whole, lines = analyst(url, a.port, a.pages)
        print("fhirpy paging into pandas (the four types spm-12 and imm-02 need):")
        print("\n".join(lines))
        print(f"  download of the four types, extrapolated: {whole:,.0f} s ({whole / med:,.0f}x)")
    print(
        "every indicator, group and stratum equals the truth"
        if not wrong
        else f"DIFFERENT from the truth: {wrong}"
    )
    met = med <= TARGET_S
    print(f"the catalogue: {'MET' if met else 'MISSED'} (target <= {TARGET_S:.0f} s)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    sys.exit(1 if wrong or not sql_agrees or not met else 0)


if __name__ == "__main__":
    main()
