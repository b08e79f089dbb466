"""--stats figures stay within the documented ranges (fhirhub/synth/stats.py RANGES)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from fhirhub.synth.cli import synth
from fhirhub.synth.generate import build
from fhirhub.synth.stats import figures, out_of_range


def test_figures_within_documented_ranges() -> None:
    fig = figures(build(6000, 21))
    assert out_of_range(fig) == {}


def test_cli_prints_stats() -> None:
    app = typer.Typer()
    app.command("synth")(synth)
    app.command("noop")(lambda: None)
    r = CliRunner().invoke(app, ["synth", "--persons", "200", "--seed", "2", "--stats"])
    assert r.exit_code == 0, r.output
    assert "prevalence.stunting" in r.output and "records_per_person" in r.output
