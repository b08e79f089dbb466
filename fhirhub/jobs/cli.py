"""Commands for the inbox and the workers, registered by ``fhirhub.cli``.

``fhirhub inbox list|show|replay``, ``fhirhub worker``, ``fhirhub beat``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from fhirhub.config import get_settings
from fhirhub.storage.inbox_status import Status

if TYPE_CHECKING:
    from fhirhub.ingest.service import IngestService

inbox = typer.Typer(
    help="The inbox of received messages: list, inspect, replay.", no_args_is_help=True
)


@contextmanager
def _service() -> Iterator[IngestService]:
    from fhirhub.ingest.service import IngestService
    from fhirhub.storage.engine import make_engine

    settings = get_settings()
    _prepare_database()
    engine = make_engine(settings.database_url, pool_size=1)
    service = IngestService.from_settings(engine, settings)
    try:
        yield service
    finally:
        service.dispatcher.close()
        engine.dispose()


@inbox.command("list")
def list_(
    status: Annotated[Status | None, typer.Option(help="Only messages with this status.")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    after: Annotated[int, typer.Option(help="Messages with a larger id.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
) -> None:
    """One line per message: id, source, sender, status, attempts, received, first issue."""
    from fhirhub.model.instant import to_instant

    with _service() as service:
        rows = service.messages(
            status=status.value if status else None, source=source, after_id=after, limit=limit
        )
    for row in rows:
        first = ""
        if row.outcome:
            issue = orjson.loads(row.outcome)["issue"][0]
            first = f"{issue.get('code')} {','.join(issue.get('expression', []))}"
        elif row.error:
            first = row.error
        typer.echo(
            f"{row.id}\t{row.source}\t{row.sender or '-'}\t{row.status}\t{row.attempts}\t"
            f"{to_instant(row.received_at)}\t{first}"
        )


@inbox.command()
def show(
    message_id: Annotated[int, typer.Argument(help="The message id.")],
    payload: Annotated[bool, typer.Option(help="Print the payload as received too.")] = False,
) -> None:
    """A message's record (and OperationOutcome) as JSON; the payload with --payload."""
    from fhirhub.ingest.service import describe

    with _service() as service:
        out = describe(service.get(message_id))
        raw = service.payload(message_id) if payload else None
    typer.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    if raw is not None:
        sys.stdout.buffer.write(raw + b"\n")


@inbox.command()
def replay(
    message_ids: Annotated[list[int] | None, typer.Argument(help="Message ids.")] = None,
    status: Annotated[
        Status | None, typer.Option(help="Replay every message with this status.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="With --status: only this source.")] = None,
) -> None:
    """Process rejected or failed messages again (after their mapping was fixed)."""
    if not message_ids and status is None:
        raise typer.BadParameter("name message ids or --status")
    with _service() as service:
        _replay(service, list(message_ids or []), status.value if status else None, source)


def _replay(service: IngestService, ids: list[int], status: str | None, source: str | None) -> None:
    if status:
        after = 0
        while batch := service.messages(status=status, source=source, after_id=after, limit=1000):
            ids.extend(r.id for r in batch)
            after = batch[-1].id
    if not ids:
        typer.echo(f"no {status} messages to replay")
        return
    service.replay(ids)
    if service.dispatcher.uses_broker:
        typer.echo(f"replaying {len(ids)} messages through the workers")
        return
    counts: dict[str, int] = {}
    for message_id in ids:
        st = service.get(message_id).status
        counts[st] = counts.get(st, 0) + 1
    typer.echo(" ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    pool: Annotated[str, typer.Option(help="prefork, solo or threads.")] = "prefork",
) -> None:
    """Run a Celery worker for the jobs (needs FHIRHUB_BROKER_URL)."""
    _require_broker()
    _prepare_database()
    from fhirhub.jobs.celery_app import celery_app

    celery_app.worker_main(
        [
            "worker",
            "--loglevel",
            get_settings().log_level,
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
        ]
    )


def beat() -> None:
    """Run Celery beat: the periodic jobs (the inbox sweep, every minute)."""
    _require_broker()
    _prepare_database()
    from fhirhub.jobs.celery_app import celery_app

    celery_app.start(["beat", "--loglevel", get_settings().log_level])


def _require_broker() -> None:
    if not get_settings().broker_url:
        typer.echo(
            "FHIRHUB_BROKER_URL is not set: jobs run inside the server process, no worker needed",
            err=True,
        )
        raise typer.Exit(2)


def _prepare_database() -> None:
    """The schema at the newest revision before any work (migrated when the settings say so):
    otherwise DatabaseNotReady, one line naming ``fhirhub migrate`` (``fhirhub.cli``)."""
    from fhirhub.storage.engine import prepare

    settings = get_settings()
    prepare(settings.database_url, migrate_if_behind=settings.migrates_itself)
