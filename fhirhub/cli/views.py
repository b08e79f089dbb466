"""``fhirhub views materialize``: keep SQL on FHIR views as tables, brought current from what
changed since their last refresh (``fhirhub.views.materialize``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fhirhub.config import get_settings

views = typer.Typer(help="SQL on FHIR views: materialise them as tables.", no_args_is_help=True)


def _definitions(names: list[str], directory: Path) -> list[tuple[str, Any]]:
    """The ViewDefinitions named (catalogue ids or JSON files), or the whole catalogue."""
    if not names:
        return [
            (p.stem, json.loads(p.read_text(encoding="utf-8")))
            for p in sorted(directory.glob("*.json"))
        ]
    found = []
    for name in names:
        path = Path(name) if name.endswith(".json") else directory / f"{name}.json"
        if not path.is_file():
            raise typer.BadParameter(f"no view {name!r} (looked for {path})")
        found.append((name, json.loads(path.read_text(encoding="utf-8"))))
    return found


@views.command()
def materialize(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Catalogue ids (FHIRHUB_VIEWS_DIR) or ViewDefinition JSON files; "
            "none: every view of the catalogue."
        ),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rebuild from nothing instead of from the changes.")
    ] = False,
) -> None:
    """Keep each view as a table `view_<name>`, brought current incrementally: only resources
    changed since the view's last refresh are read again (a changed definition is rebuilt)."""
    from fhirhub.cli import _prepare_database, _progress, console
    from fhirhub.errors import FhirError
    from fhirhub.storage.engine import make_engine
    from fhirhub.views.materialize import refresh

    settings = get_settings()
    definitions = _definitions(names or [], settings.views_dir)
    _prepare_database(settings)
    engine = make_engine(settings.database_url, pool_size=1)
    failed = False
    try:
        for name, data in definitions:
            with _progress() as bar:
                task = bar.add_task(name, total=None)

                def advance(done: int, total: int, task: Any = task, bar: Any = bar) -> None:
                    bar.update(task, completed=done, total=total)

                try:
                    result = refresh(engine, data, full=full, progress=advance)
                except FhirError as exc:
                    console.print(f"[red]{name}[/red]: {exc.summary}", highlight=False)
                    failed = True
                    continue
            how = "rebuilt" if result.rebuilt else "refreshed"
            console.print(
                f"{result.table}: {how}, {result.resources} resources read, {result.rows} rows",
                highlight=False,
            )
    finally:
        engine.dispose()
    if failed:
        raise typer.Exit(1)
