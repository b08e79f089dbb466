"""The ``fhirhub`` command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from fhirhub.config import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(
    help="fhirhub: the FHIR R4 health information exchange of Dinas Kesehatan Kota Baubau.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    demo: Annotated[
        int, typer.Option(help="Load a synthetic city of this many persons first (0: none).")
    ] = 0,
) -> None:
    """Run the FHIR server (base URL /fhir)."""
    import uvicorn

    from fhirhub.storage.engine import migrate

    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        migrate(settings.database_url)
    if demo:
        _load_demo(demo)
    console.print(f"fhirhub serving FHIR R4 at http://{host}:{port}/fhir")
    uvicorn.run(
        "fhirhub.api.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command()
def migrate() -> None:
    """Bring the database (FHIRHUB_DATABASE_URL) to the newest schema."""
    from fhirhub.storage.engine import migrate as run

    run(get_settings().database_url)
    console.print("database migrated")


@app.command()
def load(
    paths: Annotated[list[Path], typer.Argument(help="NDJSON or Bundle JSON files.", exists=True)],
) -> None:
    """Store the resources of NDJSON files and Bundle JSON files."""
    from fhirhub.services.load import count_units, load_paths
    from fhirhub.storage.engine import make_engine, migrate

    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    files = _expand(paths)
    try:
        with _progress() as bar:
            task = bar.add_task("loading", total=count_units(files))
            report = load_paths(engine, files, progress=lambda n: bar.advance(task, n))
    finally:
        engine.dispose()
    for line in report.problems[:50]:
        console.print(f"[red]rejected[/red] {line}")
    console.print(
        f"stored {report.stored}, unchanged {report.unchanged}, rejected {report.rejected}"
    )
    if report.rejected:
        raise typer.Exit(1)


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson")))
        else:
            out.append(path)
    return out


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _load_demo(persons: int) -> None:
    from fhirhub.storage.engine import make_engine

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        with console.status("loading the demo city"):
            stored, rejected = load_demo(engine, settings, persons=persons, seed=1)
    finally:
        engine.dispose()
    console.print(f"demo city loaded: {stored} resources, {rejected} rejected")


def load_demo(engine: Engine, settings: Settings, *, persons: int, seed: int) -> tuple[int, int]:
    """Store a synthetic city as its sources would send it: the Puskesmas Bundles through the
    inbox and their adapter (as ``POST /fhir`` does), the reference data as it is. Returns
    (resources stored, Bundles or messages rejected)."""
    import orjson

    from fhirhub.ingest.service import IngestService
    from fhirhub.services.load import load_bundles
    from fhirhub.synth import demo_bundles

    service = IngestService.from_settings(engine, settings)
    stored = rejected = 0
    try:
        for bundle in demo_bundles(persons=persons, seed=seed):
            source = service.claim(bundle)
            if source is None:
                report = load_bundles(engine, [bundle])
                stored, rejected = stored + report.stored, rejected + report.rejected
                continue
            row = service.submit_and_process(
                source, orjson.dumps(bundle), content_type="application/fhir+json"
            )
            stored += row.resources or 0
            rejected += row.status != "processed"
    finally:
        service.dispatcher.close()
    return stored, rejected


def _register_optional() -> None:
    try:
        from fhirhub.synth.cli import synth
    except ImportError:  # pragma: no cover - the generator is part of the package
        return
    app.command("synth", help="Generate a synthetic Baubau with ground truth.")(synth)


_register_optional()


def _register_jobs() -> None:
    from fhirhub.jobs.cli import beat, inbox, worker

    app.add_typer(inbox, name="inbox")
    app.command("worker")(worker)
    app.command("beat")(beat)


_register_jobs()


def main() -> None:
    logging.basicConfig(level=get_settings().log_level, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app()


if __name__ == "__main__":
    main()
