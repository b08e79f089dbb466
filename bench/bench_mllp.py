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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    _cpu_of,
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_listener(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FHIRHUB_DATABASE_URL": url,
        "FHIRHUB_MAPPINGS_DIR": str(ROOT / "mappings"),
        "FHIRHUB_TERMINOLOGY_DIR": str(ROOT / "terminology"),
        "FHIRHUB_LOG_LEVEL": "WARNING",
    }
    env.pop("FHIRHUB_BROKER_URL", None)
    fhirhub = Path(sys.executable).with_name("fhirhub")
    proc = subprocess.Popen([str(fhirhub), "mllp", "--port", str(port)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the listener did not start")


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


def main() -> None:
    args = arguments(
        __doc__.split("\n")[0],
        messages=(int, 400, "messages per round (over all connections)"),
        rounds=(int, 3, "rounds"),
        connections=(int, 4, "concurrent connections"),
    )
    per_round = 40 if args.quick else args.messages
    rounds = 1 if args.quick else args.rounds
    db = args.db if args.db != "fhirhub_bench" else "fhirhub_bench_mllp"
    url = fresh_database(db)
    port = free_port()
    proc = start_listener(url, port)
    header(f"MLLP ORU^R01 (5 OBX), {args.connections} connections - {environment_note()}")
    rates: list[float] = []
    parse_rates: list[float] = []
    map_rates: list[float] = []
    all_latencies: list[float] = []
    cpu_listener = 0.0
    total = 0
    try:
        for r in range(rounds):
            tag = f"R{r}X"
            batch = [oru(n, tag) for n in range(per_round)]
            parse_rates.append(parse_alone(batch))
            map_rates.append(map_alone(batch))
            chunks = [batch[i :: args.connections] for i in range(args.connections)]
            latencies: list[float] = []
            codes: list[str] = []
            cpu0 = _cpu_of(proc.pid)
            started = time.perf_counter()
            threads = [
                threading.Thread(target=sender, args=(port, c, latencies, codes)) for c in chunks
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            cpu_listener += _cpu_of(proc.pid) - cpu0
            bad = [c for c in codes if c != "AA"]
            if bad or len(codes) != per_round:
                failure(f"round {r}: {len(codes)} ACKs for {per_round} messages, {len(bad)} not AA")
            rates.append(len(codes) / elapsed)
            all_latencies.extend(latencies)
            total += len(codes)
            print(
                f"round {r + 1}: {rates[-1]:7.1f} msg/s   hl7apy parse alone "
                f"{parse_rates[-1]:7.1f} msg/s   parse+map alone {map_rates[-1]:7.1f} msg/s"
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
    lat = sorted(all_latencies)
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    rate = median(rates)
    print()
    print(f"MLLP to stored resources: {rate:7.1f} msg/s (median of {len(rates)})")
    print(f"ACK latency:             p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    print(
        f"hl7apy parsing alone:    {median(parse_rates):7.1f} msg/s (one thread)   "
        f"MLLP/parse {ratio(rate, median(parse_rates))}"
    )
    print(f"adapter parse+map alone: {median(map_rates):7.1f} msg/s (one thread)")
    listener_ms = cpu_listener / max(total, 1) * 1000
    parse_ms, map_ms = median(CPU["parse"]) * 1000, median(CPU["map"]) * 1000
    print(
        f"CPU per message:         listener {listener_ms:6.1f} ms   hl7apy parse {parse_ms:6.1f} ms"
        f"   parse+map {map_ms:6.1f} ms"
    )
    print(
        f"if the CPUs were ours:   one listener process ~{1000 / listener_ms:6.1f} msg/s; "
        f"hl7apy alone ~{1000 / parse_ms:6.1f} msg/s per core"
    )
    print(verdict(rate, TARGET, "msg/s", "MLLP ORU^R01 throughput"))
    finish()


if __name__ == "__main__":
    main()
