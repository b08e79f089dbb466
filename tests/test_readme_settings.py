"""The README's settings table is the one generated from the settings class (issue 9, item 8):
after adding a setting, run ``.venv/bin/python scripts/settings_table.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fhirhub.config import Settings, settings_table

ROOT = Path(__file__).resolve().parents[1]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts" / "settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_lists_every_setting_as_the_class_declares_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    script = _script()
    assert script.with_table(readme, settings_table()) == readme, (
        "README.md's settings table is stale: run .venv/bin/python scripts/settings_table.py"
    )
    for name in Settings.model_fields:
        assert f"`FHIRHUB_{name.upper()}`" in readme


def test_every_setting_has_a_description() -> None:
    missing = [n for n, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_the_generator_replaces_only_the_marked_block() -> None:
    script = _script()
    text = "intro\n<!-- settings -->\nold\n<!-- /settings -->\nafter\n"
    assert (
        script.with_table(text, "new\n")
        == "intro\n<!-- settings -->\nnew\n<!-- /settings -->\nafter\n"
    )
