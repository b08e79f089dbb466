"""Create (POST /fhir/Patient): req/s and p50/p99 latency at 1, 8 and 32 clients.

The load generator is wrk (install: apt-get update && apt-get install -y wrk); every request
is a different Patient (a Baubau address and a fresh NIK identifier), sent with
``Prefer: return=minimal``. Two baselines run in the same rounds, at the same concurrency:

- HTTP ceiling: wrk on GET /healthz of the same server (the stack without the database);
- storage ceiling: pgbench inserting the same JSON body into a bare jsonb table, one
  committed transaction per row, with as many PostgreSQL clients.

    .venv/bin/python bench/bench_create.py [--quick] [--seconds 10]
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

CONCURRENCY = (1, 8, 32)

# The body is split at the NIK value so that each request carries its own.
CREATE_LUA = """
init = function(args)
  math.randomseed(os.time() * 1000 + tonumber(tostring({}):sub(8), 16) % 1000)
end
request = function()
  local nik = string.format("747201%010d", math.random(0, 2147483646))
  return wrk.format("POST", "/fhir/Patient",
    {["Content-Type"] = "application/fhir+json", ["Prefer"] = "return=minimal"},
    head .. nik .. tail)
end
"""

PG_SETUP = (
    "DROP TABLE IF EXISTS bench_create; "
    "CREATE TABLE bench_create (pk bigserial PRIMARY KEY, content jsonb)"
)
PG_INSERT = "INSERT INTO bench_create (content) VALUES ('{body}');\n"


def main() -> None:
    args = common.arguments(
        __doc__.splitlines()[0],
        seconds=(float, 10.0, "seconds per measurement"),
        rounds=(int, 3, "rounds per concurrency (median reported)"),
    )
    if args.quick:
        args.seconds, args.rounds = 3.0, 1
    common.require_wrk()
    url = common.db_url(args.db) if args.keep_db else common.fresh_database(args.db)
    sample = common.patient(random.Random(3), nik="NIKVALUE")
    text = json.dumps(sample, separators=(",", ":"))
    head, tail = text.split("NIKVALUE")
    script = common.lua_string_list("parts", [head, tail]) + "head, tail = parts[1], parts[2]\n"
    script += CREATE_LUA
    with common.connect(url) as conn:
        conn.execute(PG_SETUP)
        conn.commit()
    # pgbench would read ':true' as a variable: the baseline's copy keeps json's ': ' spacing
    pg_script = PG_INSERT.format(body=json.dumps(sample).replace("'", "''"))
    common.header("bench_create: POST /fhir/Patient over HTTP (wrk)")
    print(common.environment_note())
    print(f"server: {args.workers} workers; {args.rounds} x {args.seconds:g}s per figure")
    with common.server(url, args.port, args.workers, args.profile) as srv:
        create_url = srv.base + "/fhir/Patient"
        common.wrk(create_url, connections=8, seconds=2, script=script)  # warm up
        print(
            f"\n{'clients':>7} {'create/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'bad/sock':>8} "
            f"{'healthz req/s':>14} {'create/healthz':>14} {'pg insert tps':>13} {'create/pg':>9}"
        )
        before = common.count_resources(url)
        sent = 0
        for clients in CONCURRENCY:
            rates, p50s, p99s, errors, healthz, pg = [], [], [], [0, 0], [], []
            meter = common.CpuMeter(srv, args.db)
            for _ in range(args.rounds):
                with meter:
                    r = common.wrk(
                        create_url, connections=clients, seconds=args.seconds, script=script
                    )
                sent += r.requests
                rates.append(r.rps)
                p50s.append(r.p50_ms)
                p99s.append(r.p99_ms)
                errors = [errors[0] + r.errors, errors[1] + r.socket_errors]
                healthz.append(
                    common.wrk(srv.base + "/healthz", connections=clients, seconds=args.seconds).rps
                )
                pg.append(
                    common.pgbench(args.db, pg_script, clients=clients, seconds=args.seconds).tps
                )
            rps, base_h, base_pg = common.median(rates), common.median(healthz), common.median(pg)
            print(
                f"{clients:>7} {rps:>9,.0f} {common.median(p50s):>7.2f} "
                f"{common.median(p99s):>7.2f} {f'{errors[0]}/{errors[1]}':>8} {base_h:>14,.0f} "
                f"{common.ratio(rps, base_h):>14} {base_pg:>13,.0f} {common.ratio(rps, base_pg):>9}"
            )
            print("        " + meter.line(r.requests, "creates (last round)"))
        stored = common.count_resources(url) - before
    print(
        f"\nstored {stored:,} Patients for {sent:,} requests wrk completed"
        " (it stops with some in flight)"
    )
    with common.connect(url) as conn:
        conn.execute("DROP TABLE bench_create")
        conn.commit()
    common.finish()


if __name__ == "__main__":
    main()
