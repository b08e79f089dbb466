"""A plain MLLP client and an in-process listener for the tests (a real socket, a real database)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fhirhub.ingest.mllp import Listener
from fhirhub.ingest.pipeline import Pipeline

SB, EB, CR = b"\x0b", b"\x1c", b"\r"


@dataclass
class Ack:
    raw: bytes

    @property
    def segments(self) -> list[list[str]]:
        return [s.split("|") for s in self.raw.decode().split("\r") if s]

    def segment(self, name: str) -> list[str] | None:
        return next((s for s in self.segments if s[0] == name), None)

    @property
    def code(self) -> str:
        msa = self.segment("MSA")
        assert msa is not None, self.raw
        return msa[1]

    @property
    def control_id(self) -> str:
        msa = self.segment("MSA")
        assert msa is not None
        return msa[2]

    @property
    def errors(self) -> list[list[str]]:
        return [s for s in self.segments if s[0] == "ERR"]


class Client:
    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: bytes) -> None:
        self.sock.sendall(SB + message + EB + CR)

    def receive(self) -> Ack:
        while EB not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(EB)
        self.buffer = rest[1:] if rest.startswith(CR) else rest
        assert head.startswith(SB), head[:40]
        return Ack(head[1:])

    def exchange(self, message: bytes) -> Ack:
        self.send(message)
        return self.receive()

    def close(self) -> None:
        self.sock.close()


@contextmanager
def running(pipeline: Pipeline, **options: float) -> Iterator[tuple[Listener, int]]:
    """A listener on a free port, served by an event loop in a thread of its own."""
    loop = asyncio.new_event_loop()
    listener = Listener(pipeline, "rsud", **options)  # type: ignore[arg-type]
    server = loop.run_until_complete(listener.start("127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield listener, port
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def message(
    control: str = "C1",
    *,
    trigger: str = "A04",
    version: str = "2.5",
    mrn: str = "000123",
    visit: str = "2024/01/05/000001",
    facility: str = "RSUD01",
    extra_msh: str = "",
    pid_extra: str = "",
) -> bytes:
    pv1 = "|".join(["PV1", "1", "O", "INT^^^RSUD01", *[""] * 15, visit])
    return "\r".join(
        [
            f"MSH|^~\\&|KHANZA|{facility}|FHIRHUB|DINKES7472|20240105083000||ADT^{trigger}|"
            f"{control}|P|{version}{extra_msh}",
            f"EVN|{trigger}|20240105083000",
            f"PID|1||{mrn}^^^RSUD01^MR||DOE^JOHN||19800101|M{pid_extra}",
            pv1,
        ]
    ).encode()


def oru(control: str = "O1", obx: int = 5, mrn: str = "000123") -> bytes:
    segs = [
        f"MSH|^~\\&|LIS|RSUD01|FHIRHUB|DINKES7472|20240105083000||ORU^R01^ORU_R01|{control}|P|2.5",
        f"PID|1||{mrn}^^^RSUD01^MR||DOE^JOHN||19800101|M",
        "|".join(["PV1", "1", "O", "INT^^^RSUD01", *[""] * 15, f"V-{control}"]),
        f"OBR|1||F-{control}|LAB^Lab^L|||20240105083000",
    ]
    for i in range(1, obx + 1):
        segs.append(f"OBX|{i}|NM|2345-7^Glucose^LN||{90 + i}|mg/dL^^UCUM|70-140|N|||F")
    return "\r".join(segs).encode()
