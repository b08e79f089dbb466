"""The MLLP listener: HL7 v2 over TCP into the ingest pipeline, one acknowledgement per message.

MLLP frames a message as ``<VT> message <FS><CR>``. Each connection is read by a task of its
own, any number of messages per connection, answered in the order they came (an ACK never
overtakes the message before it). For each complete frame:

1. the header is read (``hl7ack.read_header``); no MSH: ``AR``, nothing kept;
2. the payload is kept in the inbox (committed) - a message whose sending facility and MSH-10
   are already there is that message again, and is answered as it was, never stored twice;
3. the source's adapter maps it and the pipeline stores it (committed) - only then ``AA``;
   ``AE`` with ERR segments for a message that cannot be mapped, ``AR`` for one refused as a
   whole. A message that could not be stored for a passing reason (the database away) gets
   ``AE`` saying so: it is kept, and sending it again is safe.

What is not a frame never stops the listener: bytes outside a frame are skipped, a frame larger
than ``max_frame_bytes`` is read to its end and answered ``AR``, a half frame is dropped when
its connection closes, and a connection idle for ``idle_seconds`` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhirhub.errors import FhirError
from fhirhub.ingest import hl7ack, metrics
from fhirhub.ingest.hl7ack import ErrorItem, Header
from fhirhub.ingest.pipeline import Pipeline, TransientError
from fhirhub.services import audit
from fhirhub.storage.inbox_repository import InboxRow

log = logging.getLogger("fhirhub.mllp")

START, END, CR = b"\x0b", b"\x1c", b"\r"
CONTENT_TYPE = "application/hl7-v2"
HEAD = 8192  # bytes of an oversized frame kept, to address its AR


@dataclass
class Frame:
    payload: bytes
    oversized: bool = False


@dataclass
class FrameReader:
    """MLLP framing over a byte stream that arrives in pieces of any size."""

    max_bytes: int
    _buffer: bytearray = field(default_factory=bytearray)
    _inside: bool = False
    _size: int = 0
    _oversized: bool = False

    def feed(self, data: bytes) -> Iterator[Frame]:
        i = 0
        n = len(data)
        while i < n:
            if not self._inside:
                k = data.find(START, i)
                if k < 0:
                    return  # bytes between frames (a stray CR, garbage): skipped
                self._start()
                i = k + 1
                continue
            j_end = data.find(END, i)
            j_start = data.find(START, i)
            if j_start >= 0 and (j_end < 0 or j_start < j_end):
                # A new frame begins before this one ended: the sender gave up on it.
                self._append(data[i:j_start])
                log.info("mllp frame abandoned bytes=%s", self._size)
                self._start()
                i = j_start + 1
                continue
            if j_end < 0:
                self._append(data[i:])
                return
            self._append(data[i:j_end])
            i = j_end + 1
            frame = Frame(bytes(self._buffer), self._oversized)
            self._inside = False
            self._buffer = bytearray()
            yield frame

    @property
    def pending(self) -> int:
        return self._size if self._inside else 0

    def _start(self) -> None:
        self._inside = True
        self._buffer = bytearray()
        self._size = 0
        self._oversized = False

    def _append(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._oversized:
            return
        if self._size > self.max_bytes:
            self._oversized = True
            room = HEAD - len(self._buffer)
            if room > 0:
                self._buffer.extend(chunk[:room])
            return
        self._buffer.extend(chunk)


def frame(message: bytes) -> bytes:
    return START + message + END + CR


@dataclass
class Listener:
    """Answers MLLP connections for one source (the adapter that speaks HL7 v2)."""

    pipeline: Pipeline
    source: str
    max_frame_bytes: int = 16 * 1024 * 1024
    idle_seconds: float = 300.0
    wait_seconds: float = 60.0  # how long to wait for a message another worker is storing
    batch_size: int = 32  # messages of several connections kept and stored in one commit
    storers: int = 1  # batches in flight at once (threads talking to the database)
    # How long a batch waits for the messages of connections that have none in it yet: the
    # ACKs of the last batch are just out, and their senders' next messages on their way. A
    # message alone on its connection waits this long at most.
    linger_seconds: float = 0.002
    connections: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _queue: asyncio.Queue[_Pending] | None = None
    _storers: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, host: str, port: int, reuse_port: bool = False) -> asyncio.Server:
        """Listen on ``host:port``; ``reuse_port``: beside other listener processes on the
        same port (``fhirhub mllp --workers``)."""
        self._server = await asyncio.start_server(
            self.handle, host, port, limit=2**20, reuse_port=reuse_port or None
        )
        return self._server

    # --- group commit ------------------------------------------------------------------------
    # Each connection waits for its message's ACK before it sends the next, so a connection
    # has one message in hand at a time; the messages of all connections that arrive while a
    # batch is being stored make the next batch: one transaction keeps them in the inbox, one
    # claims them, one stores them, and every ACK of the batch is sent after that commit. Under
    # load a commit (a WAL flush) serves several messages, and they are written as one where
    # they may be (storing.store_together), else each in a savepoint of its own. A
    # batch waits a moment (``linger_seconds``) for the connections that have no message in
    # it yet: without it, 4 busy connections made batches of 3 and 1 in turn.

    def _ensure_storers(self) -> asyncio.Queue[_Pending]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._storers = [
                asyncio.get_running_loop().create_task(self._store_batches())
                for _ in range(max(1, self.storers))
            ]
        return self._queue

    async def _store_batches(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            until = loop.time() + self.linger_seconds
            while len(batch) < self.batch_size:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                wait = until - loop.time()
                if len(batch) >= self.connections or wait <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), wait))
                except TimeoutError:
                    break
            batch = [p for p in batch if not p.kept.done()]  # its connection went away
            if not batch:
                continue
            try:
                kept = await asyncio.to_thread(
                    self.keep_many, [(p.header, p.payload) for p in batch]
                )
                for pending, result in zip(batch, kept, strict=True):
                    _resolve(pending.kept, result)
                to_store = [(p, k[0]) for p, k in zip(batch, kept, strict=True) if k[1] is None]
                acks = await asyncio.to_thread(
                    self.store_many, [(p.header, message_id) for p, message_id in to_store]
                )
                for (pending, _), result_acks in zip(to_store, acks, strict=True):
                    _resolve(pending.stored, result_acks)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the storer never dies; each message gets its answer
                log.error("mllp batch failed error=%s", type(exc).__name__)
                for pending in batch:
                    for future in (pending.kept, pending.stored):
                        if not future.done():
                            future.set_exception(exc)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        frames = FrameReader(self.max_frame_bytes)
        # The AuditEvents of this connection's messages name the source and the peer's address
        # (this task's context, copied into the threads that store them).
        peer = writer.get_extra_info("peername")
        source = self.source
        audit.CURRENT.set(
            audit.Context(
                agent=lambda: audit.Agent(source=source),
                address=str(peer[0]) if isinstance(peer, tuple) and peer else None,
            )
        )
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(2**16), self.idle_seconds)
                except TimeoutError:
                    log.info("mllp connection idle, closed pending=%s", frames.pending)
                    return
                if not data:
                    if frames.pending:
                        log.info("mllp connection closed mid-frame bytes=%s", frames.pending)
                    return

                async def send(ack: bytes) -> None:
                    writer.write(frame(ack))
                    await asyncio.wait_for(writer.drain(), self.idle_seconds)

                for item in frames.feed(data):
                    await self.answer(item, send)
        except (ConnectionError, OSError):
            return  # the peer went away; what it sent is kept or was never complete
        except Exception as exc:  # never let one connection take the listener down
            log.error("mllp connection error=%s", type(exc).__name__)
        finally:
            self.connections -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def answer(self, item: Frame, send: Callable[[bytes], Awaitable[None]]) -> None:
        """Acknowledge one frame: in enhanced mode the commit ACK as soon as the message is
        kept, then the application ACK once its data is stored (or not)."""
        header = hl7ack.read_header(item.payload)
        if header is None:
            await send(self._count(None, hl7ack.build(None, "AR", errors=[_not_hl7()]), "AR"))
            return
        if item.oversized:
            err = ErrorItem(
                "structure", f"The frame is larger than {self.max_frame_bytes} bytes", "MSH[1]"
            )
            await send(self._count(header, hl7ack.build(header, "AR", errors=[err]), "AR"))
            return
        loop = asyncio.get_running_loop()
        pending = _Pending(header, item.payload, loop.create_future(), loop.create_future())
        try:
            await self._ensure_storers().put(pending)
            _, refusal = await pending.kept
            if refusal is not None:
                await send(refusal)
                return
            if header.enhanced and hl7ack.wanted(header.accept_ack, success=True):
                await send(hl7ack.build(header, "CA"))
            acks = await pending.stored
        except (ConnectionError, OSError, asyncio.CancelledError, TimeoutError):
            raise
        except Exception as exc:  # a bug must not close the connection without an answer
            log.error("mllp answer failed error=%s", type(exc).__name__)
            err = ErrorItem("transient", "The message could not be handled now; send it again")
            acks = [self._count(header, hl7ack.build(header, "AE", errors=[err]), "AE")]
        for ack in acks:
            await send(ack)

    def keep(self, header: Header, payload: bytes) -> tuple[int, bytes | None]:
        """Keep the message in the inbox (committed): its id, or the ACK that refuses it."""
        code = "CR" if header.enhanced else "AR"
        try:
            receipt = self.pipeline.receive(
                self.source,
                payload,
                sender=header.sending_facility[:128] or None,
                content_type=CONTENT_TYPE,
            )
        except FhirError as err:  # not keepable (NUL characters, ...): refused as a whole
            errors = [ErrorItem("structure", i.diagnostics, "MSH[1]") for i in err.issues]
            return 0, self._count(header, hl7ack.build(header, code, errors=errors), code)
        except Exception as exc:  # the database is away: nothing kept
            log.warning("mllp receive failed error=%s", type(exc).__name__)
            err_item = ErrorItem("transient", "The message could not be kept; send it again")
            code = "CE" if header.enhanced else "AE"
            return 0, self._count(header, hl7ack.build(header, code, errors=[err_item]), code)
        return receipt.id, None

    def keep_many(self, items: list[tuple[Header, bytes]]) -> list[tuple[int, bytes | None]]:
        """``keep`` for a batch, in one transaction; a batch with a message that cannot be
        kept is kept message by message, so that only that one is refused."""
        try:
            receipts = self.pipeline.receive_many(
                self.source,
                [(payload, header.sending_facility[:128] or None) for header, payload in items],
                content_type=CONTENT_TYPE,
            )
        except FhirError:
            return [self.keep(header, payload) for header, payload in items]
        except Exception as exc:  # the database is away: nothing kept
            log.warning("mllp receive failed error=%s", type(exc).__name__)
            err_item = ErrorItem("transient", "The message could not be kept; send it again")
            out: list[tuple[int, bytes | None]] = []
            for header, _ in items:
                code = "CE" if header.enhanced else "AE"
                out.append(
                    (0, self._count(header, hl7ack.build(header, code, errors=[err_item]), code))
                )
            return out
        return [(receipt.id, None) for receipt in receipts]

    def store(self, header: Header, message_id: int) -> list[bytes]:
        """Map and store a kept message; its application ACK (none when MSH-16 says so)."""
        return self._acks(header, self._stored(message_id))

    def store_many(self, items: list[tuple[Header, int]]) -> list[list[bytes]]:
        """``store`` for a batch: its messages stored in one transaction (``process_many``);
        one that another worker holds is waited for, as ``store`` does."""
        if not items:
            return []
        try:
            rows: dict[int, InboxRow] = self.pipeline.process_many([m for _, m in items])
        except Exception as exc:
            log.warning("mllp batch processing failed error=%s", type(exc).__name__)
            rows = {}
        out = []
        for header, message_id in items:
            row = rows.get(message_id)
            if row is not None and row.status == "processing":
                row = self._stored(message_id)
            out.append(self._acks(header, row))
        return out

    def _acks(self, header: Header, row: InboxRow | None) -> list[bytes]:
        code, errors = _application_ack(row)
        metrics.HL7_MESSAGES.labels(self.source, header.kind, code).inc()
        if not header.enhanced or hl7ack.wanted(header.application_ack, success=code == "AA"):
            return [hl7ack.build(header, code, errors=errors)]
        return []

    def _stored(self, message_id: int) -> InboxRow | None:
        """Process the message (a duplicate already finished is left as it is) and wait for a
        result another worker is producing."""
        deadline = time.monotonic() + self.wait_seconds
        try:
            row = self.pipeline.process(message_id)
            while row.status == "processing" and time.monotonic() < deadline:
                time.sleep(0.05)  # another worker holds it; claimed here once its lease ends
                row = self.pipeline.process(message_id)
            return row
        except TransientError:
            return None
        except Exception as exc:
            log.warning(
                "mllp processing failed message=%s error=%s", message_id, type(exc).__name__
            )
            return None

    def _count(self, header: Header | None, ack: bytes, code: str) -> bytes:
        metrics.HL7_MESSAGES.labels(self.source, header.kind if header else "unknown", code).inc()
        return ack

    async def close(self) -> None:
        """Stop listening and close every connection (a message being stored is finished by
        its thread; its ACK is not sent, so its sender sends it again)."""
        if self._server is not None:
            self._server.close()
        for task in [*self._tasks, *self._storers]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._storers, return_exceptions=True)
        self._storers = []
        self._queue = None
        if self._server is not None:
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()


@dataclass
class _Pending:
    """A message waiting for its batch: the futures its connection awaits."""

    header: Header
    payload: bytes
    kept: asyncio.Future[tuple[int, bytes | None]]  # (inbox id, or the ACK refusing it)
    stored: asyncio.Future[list[bytes]]  # its application ACKs


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # a connection closed meanwhile cancelled it
        future.set_result(result)


def _not_hl7() -> ErrorItem:
    return ErrorItem("structure", "Not an HL7 v2 message: it does not start with an MSH segment")


def _application_ack(row: InboxRow | None) -> tuple[str, list[ErrorItem]]:
    if row is not None and row.status == "processed":
        return "AA", []
    if row is not None and row.status == "rejected" and row.outcome:
        errors = hl7ack.errors_of(orjson.loads(row.outcome))
        return hl7ack.rejection_code(errors), errors
    text = "The message is kept but could not be stored now; send it again later"
    return "AE", [ErrorItem("transient", text)]
