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
        typer.Option(help="Serve this process's Prometheus metrics on this port (0: none)."),
    ] = 0,
) -> None:
    """Receive HL7 v2 messages over MLLP: each is kept in the inbox, stored, then acknowledged."""
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
        server = await listener.start(host, port)
        bound = ", ".join(str(s.getsockname()[1]) for s in server.sockets)
        console.print(f"fhirhub MLLP listener on {host}:{bound} (source {name})")
        await listener.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
