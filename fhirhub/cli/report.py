"""``fhirhub report``: the indicators of a period as CSV, XLSX (one sheet per indicator) or a
DHIS2 ``dataValueSets`` payload, evaluated over the database like ``Measure/$evaluate-measure``."""

from __future__ import annotations

import csv
import enum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from fhirhub.config import get_settings

console = Console(stderr=True)


class Format(enum.StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    dhis2 = "dhis2"


def _period(value: str) -> list[tuple[str, str]]:
    """``2025``, ``2025-03``, ``2025-01-01`` or ``START..END``."""
    start, sep, end = value.partition("..")
    params = [("periodStart", start)]
    if sep:
        params.append(("periodEnd", end))
    return params


def report(
    period: Annotated[
        str, typer.Option(help="2025, 2025-03, 2025-01-01 or START..END (WITA dates).")
    ],
    out: Annotated[Path, typer.Option(help="The file to write.")],
    measure: Annotated[
        list[str] | None, typer.Option(help="A Measure id (repeatable); default: all.")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="csv, xlsx or dhis2.")] = Format.csv,
    organization: Annotated[
        str | None, typer.Option(help="One Puskesmas (PKM01 or Organization/id).")
    ] = None,
    store: Annotated[
        bool,
        typer.Option("--store", help="Also keep the MeasureReports in the store."),
    ] = False,
    alerts: Annotated[
        bool,
        typer.Option("--alerts", help="Also store surv-* alerts as Communications to Dinkes."),
    ] = False,
) -> None:
    """Write the indicators of a period to a file."""
    from fhirhub.services.measures import evaluate_many
    from fhirhub.storage.engine import make_engine, prepare

    settings = get_settings()
    prepare(settings.database_url, migrate_if_behind=settings.migrates_itself)
    params = _period(period)
    if organization:
        params.append(("organization", organization))
    engine = make_engine(settings.database_url)
    directory = settings.measures_dir
    total = len(measure) if measure else len(list((directory / "Measure").glob("*.json")))
    try:
        with (
            Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar,
            engine.connect() as conn,
        ):
            task = bar.add_task("evaluating", total=total)
            reports = evaluate_many(
                conn, directory, measure or None, params, lambda _: bar.advance(task)
            )
        if alerts or store:
            _store(engine, reports, alerts=alerts, reports_too=store)
    finally:
        engine.dispose()
    written = _write(reports, fmt, out, directory)
    console.print(f"{len(reports)} indicators, {written} rows written to {out}")


def _store(engine: Any, reports: list[dict[str, Any]], *, alerts: bool, reports_too: bool) -> None:
    from fhirhub.services.measures import alerts as alert_service
    from fhirhub.services.measures import stored
    from fhirhub.services.writes import Writer
    from fhirhub.storage.repository import ResourceRepository

    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn))
        if reports_too:
            found, changed = stored.store(writer, reports)
            console.print(f"{found} MeasureReports, {changed} new or changed, stored")
        if alerts:
            found, changed = alert_service.store(writer, reports)
            console.print(f"{found} surveillance alerts, {changed} new or changed, stored")
        writer.flush()


def _write(reports: list[dict[str, Any]], fmt: Format, out: Path, directory: Path) -> int:
    from fhirhub.services.measures import export

    if fmt is Format.dhis2:
        mapping = orjson.loads((directory / "dhis2.json").read_bytes())
        payload = export.dhis2(reports, mapping)
        out.write_bytes(orjson.dumps(payload.body, option=orjson.OPT_INDENT_2) + b"\n")
        if payload.unmapped:
            console.print(f"{payload.unmapped} values without a DHIS2 mapping left out")
        return len(payload.values)
    if fmt is Format.csv:
        n = 0
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=export.COLUMNS)
            writer.writeheader()
            for r in reports:
                for row in export.rows(r):
                    writer.writerow(row)
                    n += 1
        return n
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    n = 0
    taken: list[str] = []
    for r in reports:
        name = export.sheet_name(export.measure_id(r), taken)
        taken.append(name)
        sheet = book.create_sheet(name)
        sheet.append(list(export.COLUMNS))
        for row in export.rows(r):
            sheet.append([row[c] for c in export.COLUMNS])
            n += 1
    book.save(out)
    return n
