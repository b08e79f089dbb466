"""`fhirhub synth`: generate a synthetic Baubau (registered by the main CLI)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .generate import DEFAULT_TODAY, build
from .stats import RANGES, figures, flat
from .writer import write_city


def synth(
    persons: Annotated[int, typer.Option("--persons", help="Residents at the window start")] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same bytes)")] = 1,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory")] = None,
    stats: Annotated[bool, typer.Option("--stats", help="Print the city's figures")] = False,
    today: Annotated[str, typer.Option("--today", help="The city's today (YYYY-MM-DD)")] = (
        DEFAULT_TODAY.isoformat()
    ),
    workers: Annotated[int, typer.Option("--workers", help="Writer processes")] = 2,
) -> None:
    """Generate a synthetic Baubau: city, population, every source's records, ground truth."""
    console = Console(stderr=True)
    if out is None and not stats:
        raise typer.BadParameter("give --out DIR, --stats, or both")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        t_model = bar.add_task("city model", total=persons)

        def on_model(_stage: str, done: int, total: int) -> None:
            bar.update(t_model, completed=done, total=total)

        sc = build(persons, seed, date.fromisoformat(today), progress=on_model)
        bar.update(t_model, completed=len(sc.persons), total=len(sc.persons))
        if out is not None:
            t_write = bar.add_task("writing", total=None)

            def on_write(_name: str, done: int, total: int) -> None:
                bar.update(t_write, completed=done, total=total)

            write_city(sc, out, workers=workers, progress=on_write)
    if stats:
        fig = figures(sc)
        if out is not None:
            (out / "stats.json").write_bytes(orjson.dumps(fig, option=orjson.OPT_INDENT_2))
        _print(Console(), fig)


def _print(console: Console, fig: dict) -> None:
    t = Table(title="Synthetic Baubau: figures", show_lines=False)
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("documented range", justify="right")
    for k, v in flat(fig).items():
        r = RANGES.get(k)
        t.add_row(k, f"{v}", f"{r[0]}–{r[1]}" if r else "")
    console.print(t)
    console.print("age bands:", fig["age_bands"])
    console.print("records per person:", fig["duplicates"]["distribution"])
