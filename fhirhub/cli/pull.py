"""``fhirhub pull <source>``: read a source's database into the inbox (registered by
``fhirhub.cli``). ``fhirhub pull khanza [--since DATE]`` reads the RSUD's SIMRS Khanza database
(``FHIRHUB_KHANZA_URL``) from where the last pull stopped."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fhirhub.config import get_settings

pull = typer.Typer(
    help="Read a source's database into the inbox, from where it stopped.", no_args_is_help=True
)
console = Console(stderr=True)


def _since(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date (YYYY-MM-DD)") from None


@pull.command("khanza")
def khanza(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Read the visits registered from this date (YYYY-MM-DD) instead of from the "
            "watermark; visits already kept are not stored again.",
        ),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Visits per read.")] = 500,
) -> None:
    """Pull new visits from the RSUD's SIMRS Khanza database (FHIRHUB_KHANZA_URL): each visit
    is kept in the inbox (source `khanza`) and mapped to Patient, Encounter, Condition,
    Procedure and Coverage; the watermark moves after every batch kept."""
    run("khanza", _since(since), batch)


def run(name: str, since: date | None, batch: int) -> None:
    from fhirhub.ingest import pull as pulls
    from fhirhub.ingest.service import IngestService
    from fhirhub.jobs.cli import _prepare_database
    from fhirhub.storage.engine import make_engine

    settings = get_settings()
    url = pulls.configured_url(settings, name)
    if url is None:
        typer.echo(f"FHIRHUB_{name.upper()}_URL is not set: nothing to pull from", err=True)
        raise typer.Exit(2)
    _prepare_database()
    engine = make_engine(settings.database_url, pool_size=1)
    service = IngestService.from_settings(engine, settings)
    try:
        with Progress(
            TextColumn(f"pull {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(name, total=None)
            report = pulls.pull(
                service,
                name,
                url,
                since=since,
                lookback_days=pulls.lookback_days(settings, name),
                batch=batch,
                on_total=lambda n: bar.update(task, total=n),
                on_batch=lambda n: bar.advance(task, n),
            )
    except pulls.SourceUnavailable as err:
        typer.echo(f"fhirhub: cannot read FHIRHUB_{name.upper()}_URL ({err})", err=True)
        raise typer.Exit(1) from None
    finally:
        service.dispatcher.close()
        engine.dispose()
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(report.statuses.items()))
    console.print(
        f"read {report.read} visits: {report.kept} new, {report.duplicates} already kept"
        + (f" ({statuses})" if statuses else ""),
        highlight=False,
    )
