"""Read by id (GET /fhir/Patient/{id}): req/s and p50/p99 latency at 1, 8 and 32 clients.

The target (2,000 reads/s) is judged at 8 clients (``JUDGED``), the level the README reports;
the other levels are printed for the shape of the curve. Only 2xx answers count as reads; the
script exits non-zero when the target is missed or any request failed.

The load generator is wrk (install: apt-get update && apt-get install -y wrk), each request
naming a random one of the stored Patients. Two baselines run in the same rounds, at the same
concurrency:

- HTTP ceiling: wrk on GET /healthz of the same server (the stack without the database);
- storage ceiling: pgbench running the server's read query (current version joined to its
  body, by primary key) with as many PostgreSQL clients.

    .venv/bin/python bench/bench_read.py [--quick] [--patients 5000] [--seconds 10]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

TARGET = 2000.0
CONCURRENCY = (1, 8, 32)
JUDGED = 8  # clients: the level the target is judged at

READ_LUA = """
init = function(args)
  math.randomseed(os.time() * 1000 + tonumber(tostring({}):sub(8), 16) % 1000)
end
request = function()
  return wrk.format("GET", "/fhir/Patient/" .. ids[math.random(1, #ids)],
                    {["Accept"] = "application/fhir+json"})
end
"""

PG_READ = """\\set i random({lo}, {hi})
SELECT r.pk, r.res_type, r.res_id, r.version, r.last_updated, r.deleted, v.content
  FROM resources r JOIN resource_versions v ON v.resource_pk = r.pk AND v.version = r.version
 WHERE r.pk = :i;
"""


def main() -> None:
    args = common.arguments(
        __doc__.splitlines()[0],
        patients=(int, 5000, "Patients stored before reading"),
        seconds=(float, 10.0, "seconds per measurement"),
        rounds=(int, 3, "rounds per concurrency (median reported)"),
    )
    if args.quick:
        args.patients, args.seconds, args.rounds = 1000, 3.0, 1
    common.require_wrk()
    url = common.db_url(args.db) if args.keep_db else common.fresh_database(args.db)
    common.header("bench_read: read by id over HTTP (wrk)")
    print(common.environment_note())
    print(
        f"server: {args.workers} workers; {args.patients} Patients; "
        f"{args.rounds} x {args.seconds:g}s per figure"
    )
    with common.server(url, args.port, args.workers, args.profile) as srv:
        ids = common.load_patients(args.port, args.patients, random.Random(7))
        common.analyze(url)
        with common.connect(url) as conn:
            lo, hi = conn.execute(
                "SELECT min(pk), max(pk) FROM resources WHERE res_type = 'Patient'"
            ).fetchone()
        script = common.lua_string_list("ids", ids) + READ_LUA
        read_url = srv.base + "/fhir/Patient/x"
        common.wrk(read_url, connections=8, seconds=2, script=script)  # warm up
        print(
            f"\n{'clients':>7} {'read req/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'bad/sock':>8} "
            f"{'healthz req/s':>14} {'read/healthz':>12} {'pgbench tps':>12} {'read/pg':>8}"
        )
        summary = {}
        if args.profile:
            print("(profiling: figures are lowered by py-spy)")
        for clients in CONCURRENCY:
            reads, p50s, p99s, errors, healthz, pg = [], [], [], [0, 0], [], []
            meter = common.CpuMeter(srv, args.db)
            for _ in range(args.rounds):
                with meter:
                    r = common.wrk(
                        read_url, connections=clients, seconds=args.seconds, script=script
                    )
                reads.append(r.rps)
                p50s.append(r.p50_ms)
                p99s.append(r.p99_ms)
                errors = [errors[0] + r.errors, errors[1] + r.socket_errors]
                h = common.wrk(srv.base + "/healthz", connections=clients, seconds=args.seconds)
                healthz.append(h.rps)
                pg.append(
                    common.pgbench(
                        args.db, PG_READ.format(lo=lo, hi=hi), clients=clients, seconds=args.seconds
                    ).tps
                )
            rps, base_h, base_pg = common.median(reads), common.median(healthz), common.median(pg)
            summary[clients] = rps
            print(
                f"{clients:>7} {rps:>11,.0f} {common.median(p50s):>7.2f} "
                f"{common.median(p99s):>7.2f} {f'{errors[0]}/{errors[1]}':>8} {base_h:>14,.0f} "
                f"{common.ratio(rps, base_h):>12} {base_pg:>12,.0f} {common.ratio(rps, base_pg):>8}"
            )
            print("        " + meter.line(r.requests, "reads (last round)"))
    judged = summary[JUDGED]
    print(
        f"\nread rate at {JUDGED} clients {judged:,.0f} req/s: read "
        + common.verdict(judged, TARGET, "req/s", f"read at {JUDGED} clients")
    )
    common.finish()


if __name__ == "__main__":
    main()
