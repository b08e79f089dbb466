"""The ``fhirhub`` command line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from fhirhub.config import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from fhirhub.services.load import BundleRoute, LoadReport

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
    """Store the resources of NDJSON files and Bundle JSON files (a source's transaction
    Bundles, such as a Puskesmas's, through the inbox and its adapter, as POST /fhir does)."""
    from fhirhub.services.load import count_units, load_paths
    from fhirhub.storage.engine import make_engine, migrate

    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    files = _expand(paths)
    try:
        with _progress() as bar, _sources(engine, settings) as route:
            task = bar.add_task("loading", total=count_units(files))
            report = load_paths(engine, files, progress=lambda n: bar.advance(task, n), route=route)
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
            report = load_demo(engine, settings, persons=persons, seed=1)
    finally:
        engine.dispose()
    console.print(
        f"demo city loaded: {report.stored} resources stored, {report.unchanged} unchanged, "
        f"{report.rejected} rejected"
    )


def load_demo(engine: Engine, settings: Settings, *, persons: int, seed: int) -> LoadReport:
    """Store a synthetic city as its sources would send it: the Puskesmas Bundles through the
    inbox and their adapter (as ``POST /fhir`` does), the reference data as it is."""
    from fhirhub.services.load import load_bundles
    from fhirhub.synth import demo_bundles

    with _sources(engine, settings) as route:
        return load_bundles(engine, demo_bundles(persons=persons, seed=seed), route=route)


@contextmanager
def _sources(engine: Engine, settings: Settings) -> Iterator[BundleRoute]:
    """A route for ``services.load`` that sends the Bundles an adapter claims through the
    inbox, processed here: counted stored, unchanged (the same Bundle again) or rejected."""
    import orjson

    from fhirhub.errors import FhirError, Issue
    from fhirhub.ingest.service import IngestService
    from fhirhub.model.json import dumps

    service = IngestService.from_settings(engine, settings)

    def route(bundle: dict[str, Any], where: str, report: LoadReport) -> bool:
        source = service.claim(bundle)
        if source is None:
            return False
        payload = dumps(bundle)  # decimals as they were written
        receipt = service.pipeline.receive(source, payload, content_type="application/fhir+json")
        row = service.pipeline.process(receipt.id)
        if row.status == "processed" and receipt.duplicate:
            report.unchanged += row.resources or 0
        elif row.status == "processed":
            report.stored += row.resources or 0
        else:
            issues = orjson.loads(row.outcome)["issue"] if row.outcome else []
            first = [Issue(i["code"], "", tuple(i.get("expression", []))) for i in issues[:1]]
            status = row.outcome_status or (422 if row.status == "rejected" else 500)
            report.reject(f"{where} (inbox message {row.id})", FhirError(status, first))
        return True

    try:
        yield route
    finally:
        service.dispatcher.close()


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
