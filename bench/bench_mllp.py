"""HL7 v2 over MLLP to stored resources: ORU^R01 with 5 OBX, 4 concurrent connections.

Starts ``fhirhub mllp`` on a PostgreSQL database of its own, sends unique ORU^R01 messages (one
Patient, a DiagnosticReport and 5 Observations each) from 4 client threads, each on one
persistent connection, waiting for each ACK before the next message (as MLLP senders do), and
prints messages/s and ACK latency p50/p99. Baseline in the same run: hl7apy parsing the same
messages alone (one process, no database), and the adapter's mapping (hl7apy + tables).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PG_SERVER,
    ROOT,
    _cpu_of,
    _libpq,
    arguments,
    connect,
    environment_note,
    failure,
    finish,
    fresh_database,
    header,
    median,
    ratio,
    verdict,
)

TARGET = 300.0  # messages/s
SB, EB, CR = b"\x0b", b"\x1c", b"\r"


def oru(n: int, tag: str) -> bytes:
    segs = [
        f"MSH|^~\\&|LIS|RSUD01|FHIRHUB|DINKES7472|20240105083000||ORU^R01^ORU_R01|{tag}{n}|P|2.5",
        f"PID|1||{tag}{n:07d}^^^RSUD01^MR||DOE^JOHN||19800101|M",
        "|".join(["PV1", "1", "O", "INT^^^RSUD01", *[""] * 15, f"V{tag}{n}"]),
        f"OBR|1||F{tag}{n}|LAB^Lab^L|||20240105083000|||||||||||||||20240105090000|||F",
    ]
    codes = ["2345-7", "718-7", "2093-3", "2571-8", "2085-9"]
    for i, code in enumerate(codes, start=1):
        segs.append(f"OBX|{i}|NM|{code}^Test^LN||{90 + i}|mg/dL^^UCUM|70-140|N|||F")
    return "\r".join(segs).encode()


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(f"{PG_SERVER}/postgres"), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_listener(
    url: str, port: int, index: str = "on", workers: int = 1
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FHIRHUB_DATABASE_URL": url,
        "FHIRHUB_MAPPINGS_DIR": str(ROOT / "mappings"),
        "FHIRHUB_TERMINOLOGY_DIR": str(ROOT / "terminology"),
        "FHIRHUB_LOG_LEVEL": "WARNING",
        "FHIRHUB_PATIENT_INDEX": index,
    }
    env.pop("FHIRHUB_BROKER_URL", None)
    fhirhub = Path(sys.executable).with_name("fhirhub")
    cmd = [str(fhirhub), "mllp", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the listener did not start")


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the listeners of ``--workers``)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return _cpu_of(pid) + sum(_cpu_of(int(c)) for c in children)


def sender(port: int, messages: list[bytes], latencies: list[float], codes: list[str]) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    buffer = b""
    try:
        for m in messages:
            started = time.perf_counter()
            sock.sendall(SB + m + EB + CR)
            while EB not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buffer += chunk
            ack, _, buffer = buffer.partition(EB)
            buffer = buffer[1:] if buffer.startswith(CR) else buffer
            latencies.append(time.perf_counter() - started)
            codes.append(ack.split(b"MSA|", 1)[1][:2].decode())
    finally:
        sock.close()


CPU: dict[str, list[float]] = {"parse": [], "map": []}  # CPU seconds per message


def parse_alone(messages: list[bytes]) -> float:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    started, cpu = time.perf_counter(), time.process_time()
    for m in messages:
        parse_message(m.decode(), validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    CPU["parse"].append((time.process_time() - cpu) / len(messages))
    return len(messages) / (time.perf_counter() - started)


def map_alone(messages: list[bytes]) -> float:
    from fhirhub.ingest import Message
    from fhirhub.ingest.adapters import Context
    from fhirhub.ingest.pipeline import Pipeline

    pipeline = Pipeline(None, Context(ROOT / "mappings", ROOT / "terminology"))  # type: ignore[arg-type]
    started, cpu = time.perf_counter(), time.process_time()
    for m in messages:
        pipeline.canonical(Message(0, "rsud", None, None, 0, m))
    CPU["map"].append((time.process_time() - cpu) / len(messages))
    return len(messages) / (time.perf_counter() - started)


def run_mode(args: Any, index: str, per_round: int, rounds: int) -> dict[str, Any]:
    """Rounds of ``per_round`` messages against a listener with the patient index ``index``,
    on a fresh database; each round beside hl7apy parsing alone and the adapter alone."""
    db = f"{args.db}_{index}"
    url = fresh_database(db)
    port = free_port()
    proc = start_listener(url, port, index, args.listeners)
    rates: list[float] = []
    parse_rates: list[float] = []
    map_rates: list[float] = []
    all_latencies: list[float] = []
    cpu_listener = 0.0
    cpu_postgres = 0.0
    total = 0
    try:
        for r in range(rounds):
            tag = f"{index.upper()}{r}X"
            batch = [oru(n, tag) for n in range(per_round)]
            parse_rates.append(parse_alone(batch))
            map_rates.append(map_alone(batch))
            chunks = [batch[i :: args.connections] for i in range(args.connections)]
            latencies: list[float] = []
            codes: list[str] = []
            cpu0 = _tree_cpu(proc.pid)
            backends = _backends(url, db)
            pg0 = {pid: _cpu_of(pid) for pid in backends}
            started = time.perf_counter()
            threads = [
                threading.Thread(target=sender, args=(port, c, latencies, codes)) for c in chunks
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            cpu_listener += _tree_cpu(proc.pid) - cpu0
            pg_now = {pid: _cpu_of(pid) for pid in _backends(url, db)}
            cpu_postgres += sum(v - pg0.get(pid, 0.0) for pid, v in pg_now.items())
            bad = [c for c in codes if c != "AA"]
            if bad or len(codes) != per_round:
                failure(f"round {r}: {len(codes)} ACKs for {per_round} messages, {len(bad)} not AA")
            rates.append(len(codes) / elapsed)
            all_latencies.extend(latencies)
            total += len(codes)
            print(
                f"index {index:3} round {r + 1}: {rates[-1]:7.1f} msg/s   hl7apy parse alone "
                f"{parse_rates[-1]:7.1f} msg/s   parse+map alone {map_rates[-1]:7.1f} msg/s   "
                f"load {os.getloadavg()[0]:.1f}"
            )
    finally:
        proc.terminate()
        proc.wait(30)
    with connect(url) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM resources WHERE res_type = 'Observation'"
        ).fetchone()[0]
    if stored != total * 5:
        failure(f"{stored} Observations stored for {total} messages of 5 OBX")
    if not args.keep_db:
        drop_database(db)
    lat = sorted(all_latencies)
    return {
        "rate": median(rates),
        "rounds": len(rates),
        "parse": median(parse_rates),
        "map": median(map_rates),
        "p50": statistics.median(lat) * 1000,
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "listener_ms": cpu_listener / max(total, 1) * 1000,
        "postgres_ms": cpu_postgres / max(total, 1) * 1000,
    }


def _backends(url: str, db: str) -> list[int]:
    """The PostgreSQL backends serving the bench database (the listener's pool)."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (db,),
        ).fetchall()
    return [int(r[0]) for r in rows]


def main() -> None:
    args = arguments(
        __doc__.split("\n")[0],
        messages=(int, 400, "messages per round (over all connections)"),
        rounds=(int, 3, "rounds"),
        connections=(int, 4, "concurrent connections"),
        index=(str, "both", "the patient index: on, off or both (one run each)"),
        listeners=(int, 1, "listener processes (fhirhub mllp --workers)"),
    )
    per_round = 40 if args.quick else args.messages
    rounds = 1 if args.quick else args.rounds
    if args.db == "fhirhub_bench":
        args.db = "fhirhub_bench_mllp"
    modes = ["on", "off"] if args.index == "both" else [args.index]
    header(
        f"MLLP ORU^R01 (5 OBX), {args.connections} connections - {environment_note()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    results = {mode: run_mode(args, mode, per_round, rounds) for mode in modes}
    print()
    for mode, res in results.items():
        print(f"patient index {mode}:")
        print(f"  MLLP to stored resources: {res['rate']:7.1f} msg/s (median of {res['rounds']})")
        print(f"  ACK latency:             p50 {res['p50']:6.1f} ms   p99 {res['p99']:6.1f} ms")
        print(
            f"  hl7apy parsing alone:    {res['parse']:7.1f} msg/s (parse_message, one thread)"
            f"   MLLP/parse {ratio(res['rate'], res['parse'])}"
        )
        print(f"  adapter parse+map alone: {res['map']:7.1f} msg/s (one thread)")
        parse_ms, map_ms = median(CPU["parse"]) * 1000, median(CPU["map"]) * 1000
        print(
            f"  CPU per message:         listener {res['listener_ms']:6.1f} ms   PostgreSQL "
            f"{res['postgres_ms']:6.1f} ms   hl7apy parse {parse_ms:6.1f} ms   parse+map "
            f"{map_ms:6.1f} ms"
        )
        # The listener is one Python process (one CPU at most, its GIL); PostgreSQL the other.
        bound = min(1000 / res["listener_ms"], 2000 / (res["listener_ms"] + res["postgres_ms"]))
        print(
            f"  if the 2 CPUs were ours: ~{bound:6.1f} msg/s (the listener's CPU, or both "
            f"CPUs' for listener + PostgreSQL); hl7apy parse alone ~{1000 / parse_ms:6.1f} "
            "msg/s per CPU"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(verdict(results[modes[0]]["rate"], TARGET, "msg/s", f"MLLP ORU^R01 (index {modes[0]})"))
    finish()


if __name__ == "__main__":
    main()
