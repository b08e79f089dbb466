"""Write the README's table of settings from fhirhub.config.Settings, between the
``<!-- settings -->`` and ``<!-- /settings -->`` markers (tests/test_readme_settings.py fails
while the two differ).

Run: .venv/bin/python scripts/settings_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- settings -->\n", "<!-- /settings -->\n"


def with_table(readme: str, table: str) -> str:
    """``readme`` with the block between the markers replaced by ``table``."""
    head, found, rest = readme.partition(START)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise SystemExit(f"README.md has no {START.strip()} ... {END.strip()} block")
    return f"{head}{START}{table}{END}{tail}"


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from fhirhub.config import settings_table

    text = README.read_text(encoding="utf-8")
    updated = with_table(text, settings_table())
    if updated != text:
        README.write_text(updated, encoding="utf-8")
        print("README.md: settings table updated")
    else:
        print("README.md: settings table already up to date")


if __name__ == "__main__":
    main()
