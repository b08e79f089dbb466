"""``fhirhub mllp``: the HL7 v2 listener (MLLP over TCP), runnable beside ``fhirhub serve``."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from fhirhub.config import get_settings

log = logging.getLogger("fhirhub.mllp")


def mllp(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (2575: HL7's registered port).")
    ] = 2575,
    source: Annotated[
        str | None,
        typer.Option(
            help="The source (adapter) the messages go to; default: the one that reads HL7 v2."
        ),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            help="Serve this process's Prometheus metrics on this port (0: none); with "
            "--workers, worker i serves them on this port + i."
        ),
    ] = 0,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Listener processes sharing the port (SO_REUSEPORT; the kernel spreads the "
            "connections over them). One process stores on one CPU at most.",
        ),
    ] = 1,
    reuse_port: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Receive HL7 v2 messages over MLLP: each is kept in the inbox, stored, then acknowledged."""
    if workers > 1:
        if port == 0:
            raise typer.BadParameter("--workers needs a fixed --port", param_hint="--port")
        if get_settings().database_url.startswith("sqlite"):
            raise typer.BadParameter(
                "--workers needs PostgreSQL: SQLite takes one writer at a time",
                param_hint="--workers",
            )
        _run_workers(host, port, source, metrics_port, workers)
        return
    from fhirhub.cli import _prepare_database, console
    from fhirhub.ingest import adapters
    from fhirhub.ingest.adapters import Context
    from fhirhub.ingest.mllp import Listener
    from fhirhub.ingest.pipeline import Pipeline
    from fhirhub.runtime import tune_collector
    from fhirhub.storage.engine import make_engine

    settings = get_settings()
    _prepare_database(settings)
    name = source or adapters.speaking("application/hl7-v2")
    if name is None:
        raise typer.BadParameter("no installed adapter reads HL7 v2 (application/hl7-v2)")
    adapters.get(name)
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    pipeline = Pipeline(
        engine,
        Context(settings.mappings_dir, settings.terminology_dir),
        base_url=settings.base_url or "urn:fhirhub",
        max_attempts=settings.ingest_max_attempts,
        lease_seconds=settings.ingest_lease_seconds,
        audited=settings.audit == "on",
    )
    listener = Listener(
        pipeline,
        name,
        max_frame_bytes=settings.mllp_max_frame_bytes,
        idle_seconds=settings.mllp_idle_seconds,
    )
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=host)

    tune_collector()

    async def run() -> None:
        server = await listener.start(host, port, reuse_port=reuse_port)
        bound = ", ".join(str(s.getsockname()[1]) for s in server.sockets)
        console.print(f"fhirhub MLLP listener on {host}:{bound} (source {name})")
        await listener.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()


def _run_workers(host: str, port: int, source: str | None, metrics_port: int, n: int) -> None:
    """Start ``n`` listeners on one port and wait for them; SIGTERM or SIGINT is passed on to
    every one (each finishes what it stores and closes), and if one exits the others are
    stopped too, so that a supervisor sees the failure."""
    import signal
    import subprocess
    import sys
    import time

    def command(i: int) -> list[str]:
        cmd = [sys.executable, "-m", "fhirhub.cli", "mllp", "--host", host, "--port", str(port)]
        cmd += ["--workers", "1", "--reuse-port"]
        if source:
            cmd += ["--source", source]
        if metrics_port:
            cmd += ["--metrics-port", str(metrics_port + i)]
        return cmd

    children = [subprocess.Popen(command(i)) for i in range(n)]

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        stop(signal.SIGTERM, None)
        codes = [child.wait() for child in children]
    failed = [c for c in codes if c not in (0, -signal.SIGTERM, -signal.SIGINT)]
    if failed:
        raise typer.Exit(failed[0] if failed[0] > 0 else 1)
