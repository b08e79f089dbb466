"""``python3 dev.py run ARGS`` (issue 9, item 5): serve's options keep serve and the demo city;
another command runs as given."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines functions only: nothing is installed or run
    return module


def test_no_arguments_serve_the_demo_city(dev: ModuleType) -> None:
    assert dev.run_args([]) == ["serve", "--demo", dev.DEMO_PERSONS]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "9000"], ["serve", "--demo", "300", "--port", "9000"]),
        (
            ["--host", "0.0.0.0", "--workers", "4"],
            ["serve", "--demo", "300", "--host", "0.0.0.0", "--workers", "4"],
        ),
        (["serve", "--port", "9000"], ["serve", "--demo", "300", "--port", "9000"]),
        (["--port", "9000", "--demo", "0"], ["serve", "--port", "9000", "--demo", "0"]),
        (["--demo=50"], ["serve", "--demo=50"]),
        (["serve", "--demo", "10"], ["serve", "--demo", "10"]),
    ],
)
def test_serve_options_keep_serve_and_the_demo_unless_told(
    dev: ModuleType, args: list[str], expected: list[str]
) -> None:
    assert dev.run_args(args) == expected


@pytest.mark.parametrize(
    "args", [["load", "/tmp/city"], ["inbox", "list", "--status", "rejected"], ["migrate"]]
)
def test_another_command_runs_as_given(dev: ModuleType, args: list[str]) -> None:
    assert dev.run_args(args) == args


def test_the_install_shows_its_progress(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pip runs without --quiet for the long step (the locked dependencies)."""
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(dev, "sh", lambda *a, **kw: calls.append(tuple(str(x) for x in a)))
    monkeypatch.setattr(dev, "STAMP", tmp_path / "stamp")
    monkeypatch.setattr(dev, "PY", tmp_path / "python")  # "exists": no venv is made
    (tmp_path / "python").write_text("")
    dev.install()
    locked = next(c for c in calls if "-r" in c)
    assert "--quiet" not in locked and "-q" not in locked
