"""The cost of authorisation and audit: read by id and bundle ingest with FHIRHUB_AUTH=on and
FHIRHUB_AUDIT=on against both off.

Each round starts the server twice on the same database, once with auth and audit off and once
with both on (the order alternating between rounds), and measures in each:

- read by id: wrk, 8 connections, GET /fhir/Patient/{random stored id} (with the bearer token
  when auth is on);
- ingest: transaction Bundles of 100 entries POSTed to /fhir by 2 clients.

With auth on the client is a ``sync`` client (system/*.cruds) holding a token from /auth/token;
the rate limit is set high enough not to refuse, so its bookkeeping is measured too. With audit
on every read is an AuditEvent stored in batches by the server (FHIRHUB_AUDIT_FLUSH_*), every
Bundle one AuditEvent in its transaction; the AuditEvents each run stored are counted after the
server's graceful stop, as a check that they were written. The figures are the medians of the
rounds and the ratio on/off (issue 13's target: at least 0.8).

    .venv/bin/python bench/bench_auth.py [--quick] [--rounds 3] [--seconds 8] [--bundles 12]
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import orjson

TARGET_RATIO = 0.8

READ_LUA = """
init = function(args)
  math.randomseed(os.time() * 1000 + tonumber(tostring({}):sub(8), 16) % 1000)
end
request = function()
  local headers = {["Accept"] = "application/fhir+json"}
  if token ~= "" then headers["Authorization"] = "Bearer " .. token end
  return wrk.format("GET", "/fhir/Patient/" .. ids[math.random(1, #ids)], headers)
end
"""


def _signing_keys() -> str:
    from joserfc import jwk

    key = jwk.generate_key("EC", "P-256", parameters={"kid": "bench-1"})
    return json.dumps({"keys": [key.as_dict(private=True)]})


def _register(url: str) -> tuple[str, str]:
    from fhirhub.auth.clients import ClientStore
    from fhirhub.auth.roles import Role
    from fhirhub.storage.engine import make_engine

    engine = make_engine(url)
    try:
        _, secret = ClientStore(engine).add("bench-sync", Role.sync)
    finally:
        engine.dispose()
    assert secret is not None
    return "bench-sync", secret


def _token(port: int, client_id: str, secret: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    conn.request(
        "POST",
        "/auth/token",
        body=urllib.parse.urlencode({"grant_type": "client_credentials"}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"Basic {basic}",
        },
    )
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    if resp.status != 200:
        raise SystemExit(f"no token: {resp.status} {body}")
    return str(body["access_token"])


def _audit_events(url: str) -> int:
    with common.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM resources WHERE res_type = 'AuditEvent'")
        return int(row.fetchone()[0])


def _post_bundles(port: int, bodies: list[bytes], clients: int, token: str) -> float:
    """Seconds to POST every body to /fhir with ``clients`` threads (a connection each time,
    as bench_ingest does, so both workers get work); fails on any non-200."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    bad: list[int] = []
    headers = {
        "Content-Type": "application/fhir+json",
        "Prefer": "return=minimal",
        "Connection": "close",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            conn.request("POST", "/fhir", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status != 200:
                with lock:
                    bad.append(resp.status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if bad:
        common.failure(f"{len(bad)} bundles refused (statuses {sorted(set(bad))})")
    return elapsed


def main() -> None:
    args = common.arguments(
        __doc__.splitlines()[0],
        patients=(int, 3000, "Patients stored before reading"),
        seconds=(float, 8.0, "seconds per read measurement"),
        rounds=(int, 3, "rounds (median reported)"),
        bundles=(int, 12, "bundles of 100 entries per ingest measurement"),
        clients=(int, 2, "concurrent ingest clients"),
    )
    if args.quick:
        args.patients, args.seconds, args.rounds, args.bundles = 1000, 3.0, 1, 4
    common.require_wrk()
    url = common.fresh_database(args.db)
    client_id, secret = _register(url)
    keys = _signing_keys()
    rng = random.Random(13)
    common.header(
        "bench_auth: read by id and bundle ingest, FHIRHUB_AUTH and FHIRHUB_AUDIT on against off"
    )
    print(common.environment_note())
    print(
        f"server: {args.workers} workers; {args.rounds} rounds; reads: 8 connections x "
        f"{args.seconds:g}s; ingest: {args.bundles} bundles of 100 by {args.clients} clients"
    )
    ids: list[str] = []
    reads: dict[str, list[float]] = {"off": [], "on": []}
    ingest: dict[str, list[float]] = {"off": [], "on": []}
    print(
        f"\n{'round':>5} {'auth+audit':>10} {'read req/s':>11} {'p50 ms':>7} "
        f"{'ingest res/s':>13} {'AuditEvents':>12}"
    )
    for round_no in range(1, args.rounds + 1):
        modes = ("off", "on") if round_no % 2 else ("on", "off")
        for mode in modes:
            os.environ["FHIRHUB_AUTH"] = mode
            os.environ["FHIRHUB_AUDIT"] = mode
            audited_before = _audit_events(url)
            os.environ["FHIRHUB_AUTH_SIGNING_KEYS"] = keys
            os.environ["FHIRHUB_AUTH_RATE_LIMIT"] = "1000000"
            with common.server(url, args.port, args.workers, args.profile) as srv:
                token = _token(args.port, client_id, secret) if mode == "on" else ""
                if not ids:
                    ids = common.load_patients(args.port, args.patients, rng) if not token else []
                    common.analyze(url)
                script = common.lua_string_list("ids", ids) + f'token = "{token}"\n' + READ_LUA
                read_url = srv.base + "/fhir/Patient/x"
                common.wrk(read_url, connections=8, seconds=1, script=script)  # warm up
                result = common.wrk(read_url, connections=8, seconds=args.seconds, script=script)
                bodies = [
                    orjson.dumps(common.transaction_bundle(rng, 100)) for _ in range(args.bundles)
                ]
                rate = args.bundles * 100 / _post_bundles(args.port, bodies, args.clients, token)
            reads[mode].append(result.rps)
            ingest[mode].append(rate)
            audited = _audit_events(url) - audited_before  # stored by the graceful stop too
            print(
                f"{round_no:>5} {mode:>10} {result.rps:>11,.0f} {result.p50_ms:>7.2f} "
                f"{rate:>13,.0f} {audited:>12,}"
            )
    read_on, read_off = common.median(reads["on"]), common.median(reads["off"])
    ing_on, ing_off = common.median(ingest["on"]), common.median(ingest["off"])
    print(
        f"\nmedian read by id: on {read_on:,.0f} req/s, off {read_off:,.0f} req/s, "
        f"on/off {common.ratio(read_on, read_off).strip()}"
    )
    print(
        f"median ingest: on {ing_on:,.0f} resources/s, off {ing_off:,.0f} resources/s, "
        f"on/off {common.ratio(ing_on, ing_off).strip()}"
    )
    for what, on, off in (("read by id", read_on, read_off), ("ingest", ing_on, ing_off)):
        if off and on / off < TARGET_RATIO:
            common.failure(f"{what} with auth and audit on is {on / off:.0%} of off (target 80%)")
    common.finish()


if __name__ == "__main__":
    main()
