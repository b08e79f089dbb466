"""``$viewdefinition-run`` streaming a view's rows: rows/s and the server's peak memory.

``--rows`` rows (default 1,000,000) come from ``--rows / 2`` Patients with two names each,
stored through the Writer in process (as ``fhirhub load`` does). The view is one row per name:
id, gender, birth date, family, text, phone and the kelurahan code from the address's
administrativeCode extension; it compiles to one SQL query. Each round, interleaved:

- fhirhub: ``POST /fhir/ViewDefinition/$viewdefinition-run`` (``_format=ndjson``) to
  ``fhirhub serve --workers 1``, the body read in 64 KiB pieces and the rows counted; the
  server worker's peak resident memory (``VmHWM``) is printed beside its resident memory
  before the first run, so the growth is what streaming cost;
- baseline: a plain SELECT of the same rows (hand-written, JSONB operators) read through a
  psycopg server-side cursor (without JIT, as fhirhub runs views) and encoded as NDJSON
  (orjson, as the server does) by the client; its peak resident memory is printed too.

Then ``fhirhub views materialize``'s refresh (``fhirhub.views.materialize``): a full build of
the view's table, then 1% of the Patients changed through the Writer and the incremental
refresh timed beside a full rebuild of the same data (the issue's target: at most 5%). The
refresh's overlap (it reads again what changed in the five minutes before its watermark, for
transactions that committed late) is set to 0 here, where nothing writes concurrently.

    .venv/bin/python bench/bench_views.py [--quick] [--rows 1000000] [--rounds 3]
"""

from __future__ import annotations

import http.client
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import orjson

VILLAGE_URL = "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode"
VIEW = {
    "resourceType": "ViewDefinition",
    "name": "patient_names",
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()"},
                {"name": "gender", "path": "gender"},
                {"name": "birth_date", "path": "birthDate"},
                {"name": "phone", "path": "telecom.where(system = 'phone').value.first()"},
                {
                    "name": "village",
                    "path": f"address.first().extension('{VILLAGE_URL}')"
                    ".extension('village').value.ofType(code).first()",
                },
            ]
        },
        {
            "forEach": "name",
            "column": [
                {"name": "use", "path": "use"},
                {"name": "text", "path": "text"},
            ],
        },
    ],
}
BASELINE = """
SELECT r.res_type || '/' || r.res_id, r.content->>'gender', r.content->>'birthDate',
       (SELECT t->>'value' FROM jsonb_array_elements(r.content->'telecom') t
         WHERE t->>'system' = 'phone' LIMIT 1),
       (SELECT v->>'valueCode' FROM jsonb_array_elements(r.content->'address'->0->'extension') e,
               jsonb_array_elements(e->'extension') v
         WHERE e->>'url' = %(url)s AND v->>'url' = 'village' LIMIT 1),
       n->>'use', n->>'text'
FROM resources r CROSS JOIN jsonb_array_elements(r.content->'name') n
WHERE r.res_type = 'Patient' AND NOT r.deleted
"""


def load(url: str, patients: int) -> None:
    import os

    # the view reads Patients only: the patient index (2,000 Patients a transaction would hold
    # more advisory locks than PostgreSQL's default lock table) is not what is measured
    os.environ["FHIRHUB_PATIENT_INDEX"] = "off"
    from fhirhub.api.deps import Database
    from fhirhub.config import get_settings

    get_settings.cache_clear()
    from fhirhub.storage.engine import make_engine

    rng = random.Random(12)
    database = Database(make_engine(url))
    started = time.perf_counter()
    for start in range(0, patients, 2000):
        batch = []
        for _ in range(min(2000, patients - start)):
            p = common.patient(rng)
            p["name"].append({"use": "usual", "text": p["name"][0]["text"].split()[0]})
            batch.append(p)

        def store(writer: Any, batch: list[dict[str, Any]] = batch) -> None:
            for p in batch:
                writer.create(p)

        database.transact(store)
    database.engine.dispose()
    elapsed = time.perf_counter() - started
    print(f"loaded {patients:,} Patients in {elapsed:.0f} s ({patients / elapsed:,.0f}/s)")


def _peak_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run_fhirhub(port: int) -> tuple[int, float]:
    body = json.dumps(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "viewResource", "resource": VIEW},
                {"name": "_format", "valueCode": "ndjson"},
            ],
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request(
        "POST",
        "/fhir/ViewDefinition/$viewdefinition-run",
        body,
        {"content-type": "application/fhir+json"},
    )
    response = conn.getresponse()
    if response.status != 200:
        common.failure(f"$viewdefinition-run answered {response.status}: {response.read()[:300]!r}")
        return 0, 1.0
    rows = 0
    while chunk := response.read(65536):
        rows += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    conn.close()
    return rows, elapsed


def run_baseline(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    rows = 0
    names = ("id", "gender", "birth_date", "phone", "village", "use", "text")
    with common.connect(url) as conn, conn.cursor(name="baseline") as cur:
        conn.execute("SET jit = off")  # as fhirhub runs views (sql_run: JIT cost, never paid)
        cur.execute(BASELINE, {"url": VILLAGE_URL})
        while batch := cur.fetchmany(1000):
            out = b"".join(
                orjson.dumps(dict(zip(names, record, strict=True))) + b"\n" for record in batch
            )
            rows += len(batch)
            del out
    return rows, time.perf_counter() - started


def bench_materialize(url: str, patients: int) -> None:
    from fhirhub.api.deps import Database
    from fhirhub.storage.engine import make_engine
    from fhirhub.views import materialize

    materialize.OVERLAP_US = 0
    engine = make_engine(url)
    database = Database(engine)
    started = time.perf_counter()
    built = materialize.refresh(engine, VIEW, full=True)
    full = time.perf_counter() - started
    changed = max(1, patients // 100)
    with common.connect(url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT res_id FROM resources WHERE res_type = 'Patient' ORDER BY random() "
                "LIMIT %s",
                (changed,),
            )
        ]

    def touch(writer: Any) -> None:
        for pid in ids:
            head = writer.head("Patient", pid)
            body = json.loads(head.content)
            body["gender"] = "female" if body.get("gender") == "male" else "male"
            writer.update("Patient", pid, body)

    database.transact(touch)
    started = time.perf_counter()
    refreshed = materialize.refresh(engine, VIEW)
    incremental = time.perf_counter() - started
    started = time.perf_counter()
    rebuilt = materialize.refresh(engine, VIEW, full=True)
    full_again = time.perf_counter() - started
    engine.dispose()
    if refreshed.rows != rebuilt.rows or refreshed.resources != len(ids):
        common.failure(
            f"incremental refresh: {refreshed.rows} rows from {refreshed.resources} resources, "
            f"a rebuild {rebuilt.rows} rows ({len(ids)} changed)"
        )
    common.header("fhirhub views materialize")
    print(f"full build       {full:7.1f} s  {built.rows:,} rows from {built.resources:,} Patients")
    print(
        f"after 1% changed {incremental:7.1f} s  incremental ({refreshed.resources:,} read), "
        f"{common.ratio(incremental, full_again)} of a full rebuild ({full_again:.1f} s)"
    )
    if incremental > 0.05 * full_again:
        common.failure(f"incremental refresh {incremental:.1f} s > 5% of {full_again:.1f} s")


def main() -> None:
    args = common.arguments(
        __doc__.splitlines()[0],
        rows=(int, 1_000_000, "rows the view gives (two per Patient)"),
        rounds=(int, 3, "interleaved rounds"),
    )
    rows_wanted = 20_000 if args.quick else args.rows
    url = common.db_url(args.db) if args.keep_db else common.fresh_database(args.db)
    if not args.keep_db:
        load(url, rows_wanted // 2)
        common.analyze(url)
    common.header(f"$viewdefinition-run, {rows_wanted:,} rows ({common.environment_note()})")
    fhirhub_rates: list[float] = []
    baseline_rates: list[float] = []
    with common.server(url, args.port, workers=1) as srv:
        pid = srv.worker_pids()[0]
        before = _peak_kib(pid, "VmRSS")
        for i in range(args.rounds if not args.quick else 1):
            rows, elapsed = run_fhirhub(args.port)
            if rows != rows_wanted:
                common.failure(f"fhirhub gave {rows:,} rows, not {rows_wanted:,}")
            fhirhub_rates.append(rows / elapsed)
            base_rows, base_elapsed = run_baseline(url)
            if base_rows != rows_wanted:
                common.failure(f"the baseline gave {base_rows:,} rows, not {rows_wanted:,}")
            baseline_rates.append(base_rows / base_elapsed)
            print(
                f"round {i + 1}: fhirhub {rows / elapsed:10,.0f} rows/s ({elapsed:6.1f} s)   "
                f"plain SELECT {base_rows / base_elapsed:10,.0f} rows/s ({base_elapsed:6.1f} s)",
                flush=True,
            )
        peak = _peak_kib(pid, "VmHWM")
    fhirhub_median = common.median(fhirhub_rates)
    baseline_median = common.median(baseline_rates)
    print()
    print(
        f"fhirhub      {fhirhub_median:10,.0f} rows/s (median)  "
        f"{common.ratio(fhirhub_median, baseline_median)} of the baseline"
    )
    print(f"plain SELECT {baseline_median:10,.0f} rows/s (median)")
    print(
        f"server worker memory: {before / 1024:,.0f} MiB before, peak {peak / 1024:,.0f} MiB "
        f"(+{(peak - before) / 1024:,.0f} MiB while streaming)"
    )
    client = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"baseline client peak memory (the bench process): {client / 1024:,.0f} MiB")
    bench_materialize(url, rows_wanted // 2)
    common.finish()


if __name__ == "__main__":
    main()
