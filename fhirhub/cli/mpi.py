"""``fhirhub mpi``: the patient index's commands (docs/mpi.md)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from sqlalchemy import Engine

from fhirhub.config import get_settings

mpi = typer.Typer(help="The patient index: rebuild, statistics, export.", no_args_is_help=True)
console = Console(stderr=True)


def _engine() -> Engine:
    from fhirhub.storage.engine import make_engine, prepare

    settings = get_settings()
    prepare(settings.database_url, migrate_if_behind=settings.migrates_itself)
    return make_engine(settings.database_url)


@mpi.command()
def rebuild(
    keep_model: Annotated[
        bool, typer.Option("--keep-model", help="Keep the current model; do not re-estimate it.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=1000, help="Records per transaction.")] = 250,
) -> None:
    """Re-link every record: re-estimate the model from the stored records (no labels), rebuild
    the blocking keys, then place each record again. Resumes an interrupted rebuild."""
    from fhirhub.services.patient_index import rebuild as run

    engine = _engine()
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("re-linking records", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = run(engine, retrain=not keep_model, batch=batch, progress=progress)
    finally:
        engine.dispose()
    resumed = " (resumed)" if report.resumed else ""
    console.print(
        f"rebuilt{resumed}: {report.records} records placed, {report.moved} moved to another "
        f"person, {report.removed} records of deleted Patients removed"
    )


@mpi.command()
def stats() -> None:
    """Persons, records, links by assurance, people's decisions and open reviews."""
    from fhirhub.mpi import store
    from fhirhub.search import find_matches

    engine = _engine()
    try:
        with engine.connect() as conn:
            counts = store.counts(conn)
            reviews = len(find_matches(conn, "Task", "code=mpi-review&status=requested"))
    finally:
        engine.dispose()
    rows = [
        ("persons", counts.get("persons", 0)),
        ("records", counts.get("records", 0)),
        ("linked automatically (level3)", counts.get("records_level3", 0)),
        ("decided by a person (level4)", counts.get("records_level4", 0)),
        ("decisions by people", counts.get("decisions", 0)),
        ("open reviews", reviews),
    ]
    for name, value in rows:
        typer.echo(f"{name}: {value}")


@mpi.command()
def export(
    format: Annotated[str, typer.Option("--format", help="Only csv for now.")] = "csv",
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: standard output).")
    ] = None,
) -> None:
    """Every record and its person: patient_id, person_id, assurance (CSV)."""
    from fhirhub.mpi import store

    if format != "csv":
        raise typer.BadParameter(
            f"format '{format}' is not supported; use csv", param_hint="--format"
        )
    engine = _engine()
    try:
        with engine.connect() as conn:
            sink = out.open("w", newline="") if out else sys.stdout
            try:
                writer = csv.writer(sink)
                writer.writerow(["patient_id", "person_id", "assurance"])
                writer.writerows(store.all_memberships(conn))
            finally:
                if out:
                    sink.close()
    finally:
        engine.dispose()
