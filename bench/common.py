"""Shared pieces of the benchmarks: a bench database, a real server process, realistic
clinical resources, the ``wrk`` load generator and the statistics printed beside baselines.

Nothing here is imported by fhirhub; the benchmarks drive the server over HTTP, as a
Puskesmas system would.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("FHIRHUB_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
BENCH_DB = os.environ.get("FHIRHUB_BENCH_DB", "fhirhub_bench")
NIK = "https://fhir.kemkes.go.id/id/nik"
WRK_INSTALL = "apt-get update && apt-get install -y wrk"


# --- command line --------------------------------------------------------------------------


def arguments(description: str, **extra: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (seconds)")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--db", default=BENCH_DB, help="PostgreSQL database to (re)create")
    parser.add_argument(
        "--keep-db", action="store_true", help="do not drop and re-migrate the database first"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record each server worker with py-spy (speedscope JSON files in DIR)",
    )
    for name, (kind, default, help_text) in extra.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=default, help=help_text
        )
    return parser.parse_args()


# --- database ------------------------------------------------------------------------------


def db_url(name: str = BENCH_DB) -> str:
    return f"{PG_SERVER}/{name}"


# The `fhirhub` executable of another checkout (its .venv/bin/fhirhub): the benchmark then
# serves and migrates with that tree's code, so two trees are compared with the same load.
OTHER_SERVER = "FHIRHUB_BENCH_SERVER"


def fresh_database(name: str = BENCH_DB) -> str:
    """Drop, create and migrate the bench database; return its URL."""
    import psycopg

    with psycopg.connect(_libpq(f"{PG_SERVER}/postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    other = os.environ.get(OTHER_SERVER)
    if other:  # that tree's schema, by that tree's own command
        env = {**os.environ, "FHIRHUB_DATABASE_URL": db_url(name)}
        subprocess.run([other, "migrate"], env=env, check=True, capture_output=True)
        return db_url(name)
    from fhirhub.storage.engine import migrate

    migrate(db_url(name))
    return db_url(name)


def connect(url: str) -> Any:
    """A plain psycopg connection (no SQLAlchemy) for baselines and checks."""
    import psycopg

    return psycopg.connect(_libpq(url))


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def drop_for_bulk_load(url: str, tables: tuple[str, ...], keep: tuple[str, ...] = ()) -> list[str]:
    """Drop the keys, indexes and triggers of ``tables`` before a COPY (the keys of ``keep``
    stay); returns the DDL that puts them back (:func:`restore_after_bulk_load`)."""
    saved: list[str] = []
    with connect(url) as conn:
        conn.autocommit = True
        for table in tables:
            if table not in keep:
                for name, definition in conn.execute(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
                    (table,),
                ).fetchall():
                    saved.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
                    conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}" CASCADE')
            for name, definition in conn.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
                (table,),
            ).fetchall():
                saved.append(definition)
                conn.execute(f'DROP INDEX "{name}"')
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")  # the versions' FK
    return saved


def restore_after_bulk_load(
    url: str, dbname: str, tables: tuple[str, ...], saved: list[str], signature: str
) -> None:
    """Put back what :func:`drop_for_bulk_load` dropped, VACUUM ANALYZE, and sign the database
    as built (:func:`built_as`)."""
    with connect(url) as conn:
        conn.autocommit = True
        conn.execute("SET maintenance_work_mem = '512MB'")
        for table in tables:
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        for ddl in saved:
            conn.execute(ddl)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('resources', 'pk'), "
            "(SELECT max(pk) FROM resources))"
        )
        conn.execute("VACUUM ANALYZE")
        conn.execute(f"COMMENT ON DATABASE \"{dbname}\" IS '{signature}'")


def built_as(dbname: str, signature: str) -> bool:
    """Whether ``dbname`` exists and a finished build signed it ``signature``."""
    try:
        with connect(db_url(dbname)) as conn:
            row = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = current_database()"
            ).fetchone()
    except Exception:
        return False
    return bool(row and row[0] == signature)


def count_resources(url: str) -> int:
    """Resources the clients sent: not the Persons, review Tasks and Provenance that the patient
    index writes beside them, nor the AuditEvents of the requests."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM resources WHERE res_type <> 'AuditEvent' AND (content IS NULL "
            "OR content->'meta'->>'source' IS DISTINCT FROM "
            "'https://fhirhub.baubaukota.go.id/source/patient-index')"
        ).fetchone()
        return int(row[0])


def analyze(url: str) -> None:
    with connect(url) as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


# --- the server ----------------------------------------------------------------------------


@dataclass
class Server:
    base: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]

    @property
    def fhir(self) -> str:
        return self.base + "/fhir"

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor), or the server itself."""
        try:
            out = subprocess.run(
                ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
        except FileNotFoundError:
            out = []
        pids = [int(p) for p in out]
        return pids or [self.process.pid]


@contextmanager
def server(
    url: str,
    port: int,
    workers: int = 2,
    profile_dir: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Run ``fhirhub serve`` on ``url`` until the block ends; optionally under py-spy.

    The port must be free: a benchmark that measured somebody else's server on it (another
    benchmark running at the same time) would report their figures as its own.
    """
    _require_free_port(port)
    env = {
        **os.environ,
        "FHIRHUB_DATABASE_URL": url,
        "FHIRHUB_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    cmd = [
        os.environ.get(OTHER_SERVER) or str(Path(sys.executable).with_name("fhirhub")),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    srv = Server(f"http://127.0.0.1:{port}", proc)
    spies: list[subprocess.Popen[bytes]] = []
    try:
        wait_healthy(srv.base, proc, log)
        time.sleep(0.5)
        if proc.poll() is not None:  # /healthz answered, but not from our server
            raise RuntimeError(f"the server exited; is port {port} taken by another process?")
        if profile_dir:
            spies = _start_profilers(srv, profile_dir)
        yield srv
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _require_free_port(port: int) -> None:
    import socket

    with socket.socket() as sock:
        # as uvicorn binds: connections of a server just stopped (TIME_WAIT) do not count,
        # only a socket still listening does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sys.exit(f"port {port} is in use (another benchmark?); choose another with --port")


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError("the server exited:\n" + log.read().decode(errors="replace")[-3000:])
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not become healthy in time")


def _start_profilers(srv: Server, profile_dir: str) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    Path(profile_dir).mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in srv.worker_pids():
        out = Path(profile_dir) / f"worker-{pid}.speedscope.json"
        procs.append(
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "speedscope",
                    "--rate",
                    "200",
                    "--output",
                    str(out),
                    "--nonblocking",
                    # only samples holding the GIL: where the Python CPU goes, waits left out
                    *(["--gil"] if os.environ.get("FHIRHUB_BENCH_PROFILE_GIL") else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1.0)
    return procs


# --- realistic clinical resources ----------------------------------------------------------

KELURAHAN = [
    ("7472011001", "Wameo"),
    ("7472011002", "Tomba"),
    ("7472021003", "Lamangga"),
    ("7472031004", "Bone-Bone"),
    ("7472041001", "Bukit Wolio Indah"),
    ("7472051002", "Kadolomoko"),
]
GIVEN = ["Wa Ode", "La Ode", "Muhammad", "Siti", "Andi", "Nur", "Rahmat", "Dewi", "Hasan"]
FAMILY = ["Hamzah", "Rusdin", "Sarimin", "Baharuddin", "Saleh", "Yusuf", "Kadir", "Amin"]
ICD10 = [
    ("J06.9", "Acute upper respiratory infection, unspecified"),
    ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("A09", "Diarrhoea and gastroenteritis of presumed infectious origin"),
    ("K29.7", "Gastritis, unspecified"),
    ("A90", "Dengue fever [classical dengue]"),
]
VACCINES = [
    ("BCG", "Vaksin BCG"),
    ("DPT-HB-Hib", "Vaksin DPT-HB-Hib"),
    ("OPV", "Vaksin Polio Oral"),
    ("MR", "Vaksin Campak Rubella"),
]
LOINC = "http://loinc.org"


def _nik(rng: random.Random, born: str, gender: str) -> str:
    """A NIK as Dukcapil issues it: district, birth date as DDMMYY (day + 40 for a woman), and
    a sequence number (a NIK whose date is not the record's reads as a relative's)."""
    region = rng.choice(KELURAHAN)[0][:6]
    year, month, day = born.split("-")
    day_code = int(day) + (40 if gender == "female" else 0)
    return f"{region}{day_code:02}{month}{year[2:]}{rng.randint(1, 9999):04}"


def patient(rng: random.Random, nik: str | None = None) -> dict[str, Any]:
    code, kel = rng.choice(KELURAHAN)
    gender = rng.choice(["male", "female"])
    born = f"{rng.randint(1950, 2024)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}"
    return {
        "resourceType": "Patient",
        "meta": {"profile": ["https://fhir.kemkes.go.id/r4/StructureDefinition/Patient"]},
        "identifier": [{"use": "official", "system": NIK, "value": nik or _nik(rng, born, gender)}],
        "active": True,
        "name": [{"use": "official", "text": f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"}],
        "telecom": [{"system": "phone", "value": f"08{rng.randint(10**9, 10**10 - 1)}"}],
        "gender": gender,
        "birthDate": born,
        "address": [
            {
                "use": "home",
                "line": [f"Jl. Betoambari No. {rng.randint(1, 200)}"],
                "city": "Kota Baubau",
                "postalCode": "93724",
                "country": "ID",
                "extension": [
                    {
                        "url": "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode",
                        "extension": [
                            {"url": "province", "valueCode": "74"},
                            {"url": "city", "valueCode": "7472"},
                            {"url": "district", "valueCode": code[:6]},
                            {"url": "village", "valueCode": code},
                        ],
                    }
                ],
                "text": f"Kel. {kel}",
            }
        ],
    }


def _when(rng: random.Random) -> str:
    return (
        f"2025-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}"
        f"T{rng.randint(7, 15):02}:{rng.randint(0, 59):02}:00+08:00"
    )


def encounter(rng: random.Random, subject: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory",
        },
        "subject": {"reference": subject},
        "period": {"start": when, "end": when},
        "serviceProvider": {"reference": "Organization/pkm-wajo"},
        "identifier": [
            {"system": "http://sys-ids.kemkes.go.id/encounter/7472", "value": uuid.uuid4().hex[:12]}
        ],
    }


def _observation(
    subject: str, enc: str, when: str, category: str, code: str, display: str, value: Any
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": category,
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "subject": {"reference": subject},
        "encounter": {"reference": enc},
        "effectiveDateTime": when,
    }
    if isinstance(value, list):
        obs["component"] = value
    else:
        obs["valueQuantity"] = value
    return obs


def _qty(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": code}


def observations(rng: random.Random, subject: str, enc: str, when: str) -> list[dict[str, Any]]:
    vs, lab = "vital-signs", "laboratory"
    bp = [
        {
            "code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic"}]},
            "valueQuantity": _qty(rng.randint(100, 170), "mm[Hg]", "mm[Hg]"),
        },
        {
            "code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic"}]},
            "valueQuantity": _qty(rng.randint(60, 100), "mm[Hg]", "mm[Hg]"),
        },
    ]
    return [
        _observation(subject, enc, when, vs, "85354-9", "Blood pressure panel", bp),
        _observation(
            subject,
            enc,
            when,
            vs,
            "29463-7",
            "Body weight",
            _qty(round(rng.uniform(8, 90), 1), "kg", "kg"),
        ),
        _observation(
            subject,
            enc,
            when,
            vs,
            "8302-2",
            "Body height",
            _qty(round(rng.uniform(60, 180), 1), "cm", "cm"),
        ),
        _observation(
            subject,
            enc,
            when,
            vs,
            "8867-4",
            "Heart rate",
            _qty(rng.randint(55, 110), "/min", "/min"),
        ),
        _observation(
            subject,
            enc,
            when,
            vs,
            "8310-5",
            "Body temperature",
            _qty(round(rng.uniform(36, 39.5), 1), "Cel", "Cel"),
        ),
        _observation(
            subject,
            enc,
            when,
            lab,
            "718-7",
            "Hemoglobin",
            _qty(round(rng.uniform(9, 16), 1), "g/dL", "g/dL"),
        ),
        _observation(
            subject,
            enc,
            when,
            lab,
            "2339-0",
            "Glucose",
            _qty(rng.randint(70, 250), "mg/dL", "mg/dL"),
        ),
    ]


def condition(rng: random.Random, subject: str, enc: str, when: str) -> dict[str, Any]:
    code, display = rng.choice(ICD10)
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "encounter-diagnosis",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {"system": "http://hl7.org/fhir/sid/icd-10", "code": code, "display": display}
            ]
        },
        "subject": {"reference": subject},
        "encounter": {"reference": enc},
        "recordedDate": when,
    }


def immunization(rng: random.Random, subject: str, enc: str, when: str) -> dict[str, Any]:
    code, display = rng.choice(VACCINES)
    return {
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": {
            "coding": [
                {"system": "http://sys-ids.kemkes.go.id/kfa", "code": code, "display": display}
            ]
        },
        "patient": {"reference": subject},
        "encounter": {"reference": enc},
        "occurrenceDateTime": when,
        "lotNumber": f"LOT{rng.randint(1000, 9999)}",
        "protocolApplied": [{"doseNumberPositiveInt": rng.randint(1, 3)}],
    }


def visit(rng: random.Random) -> list[dict[str, Any]]:
    """One Puskesmas visit: Patient, Encounter, 7 Observations, Condition, Immunization
    (10 resources), linked by urn:uuid fullUrls. Returns bundle entries."""
    when = _when(rng)
    pat_url, enc_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    resources = [
        (pat_url, patient(rng)),
        (enc_url, encounter(rng, pat_url, when)),
        *[(f"urn:uuid:{uuid.uuid4()}", o) for o in observations(rng, pat_url, enc_url, when)],
        (f"urn:uuid:{uuid.uuid4()}", condition(rng, pat_url, enc_url, when)),
        (f"urn:uuid:{uuid.uuid4()}", immunization(rng, pat_url, enc_url, when)),
    ]
    return [
        {"fullUrl": url, "resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
        for url, res in resources
    ]


def transaction_bundle(rng: random.Random, entries: int = 100) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    while len(out) < entries:
        out.extend(visit(rng))
    return {"resourceType": "Bundle", "type": "transaction", "entry": out[:entries]}


def resolved_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The bundle's resources as the server would store them: ids assigned, urn:uuid
    references rewritten (for the COPY baseline)."""
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{uuid.uuid4()}" for e in bundle["entry"]}
    text = json.dumps([e["resource"] for e in bundle["entry"]])
    for url, target in ids.items():
        text = text.replace(f'"{url}"', f'"{target}"')
    out = json.loads(text)
    for res, target in zip(out, ids.values(), strict=True):
        res["id"] = target.split("/", 1)[1]
        res["meta"] = {
            **res.get("meta", {}),
            "versionId": "1",
            "lastUpdated": "2025-01-01T00:00:00Z",
        }
    return out


# --- load generation -----------------------------------------------------------------------


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit(f"this benchmark needs the wrk load generator; install it with: {WRK_INSTALL}")
    return wrk


@dataclass
class WrkResult:
    requests: int  # responses received
    seconds: float
    rps: float  # 2xx responses per second: a failed request is not throughput
    p50_ms: float
    p99_ms: float
    errors: int  # responses other than 2xx
    socket_errors: int  # connect, read, write errors and timeouts (10 s)

    @property
    def failed(self) -> int:
        return self.errors + self.socket_errors


# Each wrk thread counts its 2xx responses; done() adds them up (threads are kept by setup()).
_WRK_DONE = """
local threads = {}
setup = function(thread) table.insert(threads, thread) end
ok2xx = 0
response = function(status, headers, body)
  if status >= 200 and status < 300 then ok2xx = ok2xx + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local ok = 0
  for _, thread in ipairs(threads) do ok = ok + thread:get("ok2xx") end
  io.write(string.format("JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d,"
    .. " \\"p99_us\\": %d, \\"ok\\": %d, \\"socket\\": %d}\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), ok,
    e.connect + e.read + e.write + e.timeout))
end
"""


def wrk(
    url: str, *, connections: int, seconds: float, script: str = "", threads: int | None = None
) -> WrkResult:
    """Run wrk for ``seconds`` with ``connections`` keep-alive connections. The rate counts
    only 2xx responses; every other response and every socket error is a failure."""
    exe = require_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script + "\n" + _WRK_DONE)
    try:
        threads = threads or min(connections, 2)
        out = subprocess.run(
            [
                exe,
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{max(1, round(seconds))}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                lua.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(lua.name)
    line = next(ln for ln in out.splitlines() if ln.startswith("JSON "))
    data = json.loads(line[5:])
    secs = data["duration_us"] / 1e6
    result = WrkResult(
        data["requests"],
        secs,
        data["ok"] / secs,
        data["p50_us"] / 1000,
        data["p99_us"] / 1000,
        data["requests"] - data["ok"],
        data["socket"],
    )
    if result.failed:
        failure(f"{result.failed} of {result.requests} requests to {url} failed", quiet=True)
    return result


# --- statistics and printing ---------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:6.1%}" if baseline else "   n/a"


def header(title: str) -> None:
    print()
    print(title)
    print("-" * len(title))


def environment_note() -> str:
    import platform

    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"PostgreSQL at {PG_SERVER.split('@')[-1]}"
    )


_FAILURES: list[str] = []


def failure(message: str, *, quiet: bool = False) -> None:
    """Record what makes this run a failure (a missed target, a failed request): ``finish``
    then exits non-zero."""
    _FAILURES.append(message)
    if not quiet:
        print("FAILED: " + message, flush=True)


def verdict(value: float, target: float, unit: str, what: str = "") -> str:
    """MET or MISSED against a lower bound; a miss makes the run fail (see ``finish``)."""
    met = value >= target
    if not met:
        failure(f"{what or 'target'}: {value:,.0f} {unit} < {target:,.0f} {unit}", quiet=True)
    return f"{'MET' if met else 'MISSED'} (target >= {target:,.0f} {unit})"


def finish() -> None:
    """Exit non-zero, naming why, if a target was missed or a request failed."""
    if _FAILURES:
        print("\nthis run FAILED:", file=sys.stderr)
        for message in dict.fromkeys(_FAILURES):
            print("  " + message, file=sys.stderr)
        sys.exit(1)


# --- CPU accounting ------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


class CpuMeter:
    """CPU seconds used between start and stop (Linux /proc; zeros elsewhere) by the server's
    workers, by the PostgreSQL backends connected to the bench database, and by the whole
    machine (what else ran: the load generator, other users' work)."""

    def __init__(self, srv: Server, dbname: str = BENCH_DB) -> None:
        self.srv = srv
        self.dbname = dbname

    def _backends(self) -> list[int]:
        try:
            with connect(db_url(self.dbname)) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()",
                    (self.dbname,),
                ).fetchall()
        except Exception:
            return []
        return [int(r[0]) for r in rows]

    def __enter__(self) -> CpuMeter:
        self.workers = self.srv.worker_pids()
        self._w0 = sum(_cpu_of(p) for p in self.workers)
        self._p0 = {p: _cpu_of(p) for p in self._backends()}
        self._m0 = _machine_busy()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.machine = _machine_busy() - self._m0
        self.server = sum(_cpu_of(p) for p in self.workers) - self._w0
        now = {p: _cpu_of(p) for p in self._backends()}
        self.postgres = sum(now[p] - self._p0.get(p, 0.0) for p in now)

    def line(self, units: float, unit: str) -> str:
        per = 1000 / units if units else 0.0
        rest = max(0.0, self.machine - self.server - self.postgres)
        return (
            f"CPU per 1,000 {unit}: server {self.server * per:.2f} s, PostgreSQL backends "
            f"{self.postgres * per:.2f} s, everything else {rest * per:.2f} s "
            f"(wall {self.wall * per:.2f} s on {os.cpu_count()} CPUs)"
        )


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (all CPUs)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / _TICK


# --- the PostgreSQL baseline: pgbench running the server's statement ------------------------


@dataclass
class PgbenchResult:
    tps: float
    latency_ms: float


def pgbench(dbname: str, script: str, *, clients: int, seconds: float) -> PgbenchResult:
    """Run a custom pgbench script (no vacuum, prepared statements) against ``dbname``."""
    exe = shutil.which("pgbench")
    if exe is None:
        sys.exit("the baseline needs pgbench (Debian: apt-get install -y postgresql-client)")
    host = PG_SERVER.split("@")[-1]
    hostname, _, port = host.partition(":")
    user = PG_SERVER.split("://", 1)[1].split("@")[0] if "@" in PG_SERVER else "postgres"
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [
                exe,
                "-n",
                "-M",
                "prepared",
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-T",
                str(max(1, round(seconds))),
                "-f",
                f.name,
                "-h",
                hostname,
                "-p",
                port or "5432",
                "-U",
                user,
                dbname,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    tps = latency = 0.0
    for line in out.splitlines():
        if line.startswith("tps ="):
            tps = float(line.split()[2])
        elif line.startswith("latency average"):
            latency = float(line.split("=")[1].split()[0])
    return PgbenchResult(tps, latency)


def lua_string_list(name: str, values: list[str]) -> str:
    return f"{name} = {{" + ",".join(json.dumps(v) for v in values) + "}\n"


def load_patients(port: int, count: int, rng: random.Random) -> list[str]:
    """Store ``count`` Patients (transaction bundles of 100); return their ids."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    ids: list[str] = []
    for start in range(0, count, 100):
        entries = [
            {"resource": patient(rng), "request": {"method": "POST", "url": "Patient"}}
            for _ in range(min(100, count - start))
        ]
        body = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
        conn.request(
            "POST",
            "/fhir",
            body=body,
            headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal"},
        )
        resp = conn.getresponse()
        data = json.loads(resp.read())
        if resp.status != 200:
            raise SystemExit(f"loading patients failed: {resp.status}")
        ids.extend(e["response"]["location"].split("/")[1] for e in data["entry"])
    conn.close()
    return ids


def post_all(
    port: int, path: str, bodies: list[bytes], clients: int
) -> tuple[float, list[tuple[int, bytes]]]:
    """POST every body to ``path``, shared among ``clients`` threads; return the elapsed seconds
    and each response's (status, first 300 bytes).

    Each request has a connection of its own: the server's worker processes share one listening
    socket, and a kept-alive connection stays with the worker that accepted it. With two clients
    and two workers, both connections landed on one worker about half the time, and the run
    measured one process (1,750 instead of 3,100 resources/s)."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    responses: list[tuple[int, bytes]] = []

    def client() -> None:
        headers = {
            "Content-Type": "application/fhir+json",
            "Prefer": "return=minimal",
            "Connection": "close",
        }
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            conn.close()
            with lock:
                responses.append((resp.status, payload[:300]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, responses
