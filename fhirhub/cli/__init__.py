"""The ``fhirhub`` command line."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from typer.core import TyperGroup

from fhirhub import __version__
from fhirhub.cli.clients import clients
from fhirhub.config import Settings, get_settings
from fhirhub.errors import FhirError
from fhirhub.storage.engine import DatabaseNotReady, connection_problem

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from fhirhub.services.load import BundleRoute, LoadReport

SHOWN_REJECTIONS = 20  # rejection lines printed by `fhirhub load`; the rest are counted


class OneLineErrors(TyperGroup):
    """Every command: a known error (a database that is missing, unreachable or not migrated;
    a FHIR error such as a missing inbox message; a file that cannot be read) is one line on
    stderr and exit code 1, not a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's Context (its own click)
        try:
            return super().invoke(ctx)
        except (
            DatabaseNotReady,
            FhirError,
            DBAPIError,
            ArgumentError,
            ValidationError,
            OSError,
        ) as err:
            typer.echo(f"fhirhub: {_one_line(err)}", err=True)
            raise typer.Exit(1) from None

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Usage errors (a bad option value, a missing argument) are one line too, exit code 2,
        rather than a usage block and a framed message."""
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        except typer.TyperException as err:
            ctx = getattr(err, "ctx", None)
            if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:
                help_text = err.format_message()  # rich has printed it already, plain has not
                if help_text.strip():
                    typer.echo(help_text)
                sys.exit(0)
            where = ctx.command_path if ctx is not None else "fhirhub"
            message = " ".join(err.format_message().split())
            typer.echo(f"{where}: {message} (see {where} --help)", err=True)
            sys.exit(getattr(err, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(err: Exception) -> str:
    if isinstance(err, OperationalError):
        return connection_problem(get_settings().database_url, err)
    if isinstance(err, DBAPIError):
        detail = str(getattr(err, "orig", None) or err).strip().splitlines()
        return f"database error: {detail[0] if detail else type(err).__name__}"
    if isinstance(err, ArgumentError):  # an URL SQLAlchemy cannot read, a driver it lacks
        return f"FHIRHUB_DATABASE_URL: {err}"
    if isinstance(err, ValidationError):  # a FHIRHUB_* variable with a value of the wrong kind
        first = err.errors()[0]
        name = "FHIRHUB_" + "_".join(str(p) for p in first["loc"]).upper()
        return f"{name}: {first['msg']} (got {first.get('input')!r})"
    if isinstance(err, FhirError):
        return err.summary
    if isinstance(err, OSError) and err.filename:
        return f"{err.strerror or err}: {err.filename}"
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


app = typer.Typer(
    cls=OneLineErrors,
    help="fhirhub: the FHIR R4 health information exchange of Dinas Kesehatan Kota Baubau.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown: a docstring's paragraphs are reflowed to the terminal's width (in "rich" mode
    # the line breaks of the source stay, and a help text broke mid-phrase)
    rich_markup_mode="markdown",
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fhirhub {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """fhirhub: the FHIR R4 health information exchange of Dinas Kesehatan Kota Baubau."""


def default_workers(database_url: str, cpus: int | None) -> int:
    """Worker processes for ``serve`` when none are asked for: one on SQLite (one writer at a
    time anyway); on PostgreSQL two per CPU and one more, as a worker waits for the database
    part of the time, at most 8 (each keeps its own connection pool)."""
    if database_url.startswith("sqlite"):
        return 1
    return max(1, min(2 * (cpus or 1) + 1, 8))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default: 1 on SQLite; on PostgreSQL 2 per CPU + 1, at most 8)."
        ),
    ] = None,
    demo: Annotated[
        int, typer.Option(help="Load a synthetic city of this many persons first (0: none).")
    ] = 0,
) -> None:
    """Run the FHIR server (base URL /fhir)."""
    import uvicorn

    settings = get_settings()
    _check_auth(settings, host)
    _prepare_database(settings)
    if demo:
        _load_demo(demo)
    count = workers or default_workers(settings.database_url, os.cpu_count())
    if settings.auth == "off":
        console.print(
            "authorisation is off (FHIRHUB_AUTH=off): only this machine can reach the server; "
            "set FHIRHUB_AUTH=on to serve other machines"
        )
    else:
        console.print("authorisation is on: every request needs an access token (/auth/token)")
    plural = "worker" if count == 1 else "workers"
    console.print(f"fhirhub serving FHIR R4 at http://{host}:{port}/fhir ({count} {plural})")
    uvicorn.run(
        "fhirhub.api.asgi:app",
        host=host,
        port=port,
        workers=count,
        log_level=settings.log_level.lower(),
        access_log=False,
        # A worker that has not answered the supervisor's ping within this many seconds is
        # killed and replaced. Importing the app takes seconds of CPU: with several workers
        # starting at once on a busy machine the default (5) killed them in a loop.
        timeout_worker_healthcheck=60,
    )


def _check_auth(settings: Settings, host: str) -> None:
    """Refuse to serve, in one line, without authorisation off this machine, or with auth on
    and no usable signing keys."""
    if settings.auth == "off" and not is_loopback(host):
        typer.echo(
            f"fhirhub: refusing to listen on {host} with FHIRHUB_AUTH=off (anyone who reaches "
            "the port could read and write every record); set FHIRHUB_AUTH=on with "
            "FHIRHUB_AUTH_SIGNING_KEYS, or listen on 127.0.0.1",
            err=True,
        )
        raise typer.Exit(1)
    if settings.auth == "on":
        from fhirhub.auth.errors import AuthConfigError
        from fhirhub.auth.tokens import load_signing_keys

        try:
            load_signing_keys(settings)
        except AuthConfigError as exc:
            typer.echo(f"fhirhub: FHIRHUB_AUTH=on, but {exc}; not starting", err=True)
            raise typer.Exit(1) from None


@app.command()
def migrate() -> None:
    """Bring the database (FHIRHUB_DATABASE_URL) to the newest schema."""
    from fhirhub.storage.engine import prepare

    prepare(get_settings().database_url, migrate_if_behind=True)
    console.print("database migrated")


def _prepare_database(settings: Settings) -> None:
    """Migrate the database (FHIRHUB_AUTO_MIGRATE, the SQLite default) or refuse to go on with
    an old schema, naming ``fhirhub migrate``: raises DatabaseNotReady, a one-line error."""
    from fhirhub.storage.engine import prepare

    prepare(settings.database_url, migrate_if_behind=settings.migrates_itself)


@app.command()
def load(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="NDJSON or Bundle JSON files, or folders of them (such as fhirhub synth's).",
            exists=True,
        ),
    ],
) -> None:
    """Store the resources of NDJSON files and Bundle JSON files (a source's transaction
    Bundles, such as a Puskesmas's, through the inbox and its adapter, as POST /fhir does).

    In folders, files that are not FHIR (HL7 v2, Khanza tables, BPJS payloads, ground truth)
    are left, and each folder's are named with the reason."""
    from fhirhub.services.load_plan import plan

    found = plan(paths)
    for folder, why, n in found.skipped_by_folder():
        files = "file" if n == 1 else "files"
        console.print(f"skipped {folder}: {n} {files}, {why}", soft_wrap=True, highlight=False)
    if not found.files:
        names = ", ".join(str(p) for p in paths)
        typer.echo(
            f"fhirhub: nothing to load in {names} (no FHIR .json, .ndjson or .jsonl)", err=True
        )
        raise typer.Exit(1)
    from fhirhub.services.load import LoadReport

    settings = get_settings()
    report = LoadReport()
    with _new_database_kept_if_used(settings.database_url, report):
        _prepare_database(settings)
        _load_files(settings, found.files, found.units, report)
    for line in report.problems[:SHOWN_REJECTIONS]:
        console.print(f"[red]rejected[/red] {escape(line)}", soft_wrap=True, highlight=False)
    if report.rejected > SHOWN_REJECTIONS:
        console.print(f"and {report.rejected - SHOWN_REJECTIONS} more rejected")
    console.print(
        f"stored {report.stored}, unchanged {report.unchanged}, rejected {report.rejected}"
    )
    if report.rejected:
        raise typer.Exit(1)


def _load_files(settings: Settings, files: list[Path], total: int, report: LoadReport) -> None:
    from fhirhub.services.load import load_paths
    from fhirhub.storage.engine import make_engine

    engine = make_engine(settings.database_url)
    try:
        with _progress() as bar, _sources(engine, settings) as route:
            task = bar.add_task("loading", total=total)
            advance = lambda n: bar.advance(task, n)  # noqa: E731
            load_paths(engine, files, progress=advance, route=route, report=report)
    finally:
        engine.dispose()


@contextmanager
def _new_database_kept_if_used(database_url: str, report: LoadReport) -> Iterator[None]:
    """An SQLite file that did not exist before a load is removed again when the load stored
    nothing in it (it failed, was interrupted early, or everything was rejected): a failed
    ``fhirhub load`` run in some folder leaves no empty ``fhirhub.sqlite3`` behind."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    path = Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None
    fresh = path is not None and not path.exists()
    try:
        yield
    finally:
        used = report.stored or report.unchanged
        if fresh and path is not None and not used:
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)


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
            first = [
                Issue(i["code"], i.get("diagnostics", ""), tuple(i.get("expression", [])))
                for i in issues[:1]
            ]
            status = row.outcome_status or (422 if row.status == "rejected" else 500)
            report.reject(f"{where} (inbox message {row.id})", FhirError(status, first))
        return True

    try:
        yield route
    finally:
        service.dispatcher.close()


def _register_optional() -> None:
    from fhirhub.cli.report import report

    app.command("report", help="Write a period's indicators (CSV, XLSX, DHIS2).")(report)
    try:
        from fhirhub.synth.cli import synth
    except ImportError:  # pragma: no cover - the generator is part of the package
        return
    app.command("synth", help="Generate a synthetic Baubau with ground truth.")(synth)


_register_optional()


def _register_jobs() -> None:
    from fhirhub.cli.mpi import mpi
    from fhirhub.cli.views import views
    from fhirhub.jobs.cli import beat, inbox, worker

    app.add_typer(inbox, name="inbox")
    app.add_typer(mpi, name="mpi")
    app.add_typer(views, name="views")
    app.command("worker")(worker)
    app.command("beat")(beat)
    from fhirhub.cli.pull import pull

    app.add_typer(pull, name="pull")


_register_jobs()
app.add_typer(clients, name="clients")


def _register_mllp() -> None:
    from fhirhub.cli.mllp import mllp

    app.command("mllp")(mllp)


_register_mllp()


def main() -> None:
    try:
        level = get_settings().log_level
    except ValidationError as err:
        typer.echo(f"fhirhub: {_one_line(err)}", err=True)
        sys.exit(1)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app()


if __name__ == "__main__":
    main()
