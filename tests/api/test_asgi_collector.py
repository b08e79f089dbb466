"""The server worker's module (``fhirhub.api.asgi``) tunes Python's cycle collector once the app
is built: its long-lived objects frozen out of every collection, and a young generation large
enough that a Bundle's validation is not interrupted every 700 allocations. Run in a process of
its own: freezing the test process would keep every test's objects for good."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = (
    "import gc; import fhirhub.runtime as r; before = gc.get_freeze_count(); "
    "import fhirhub.api.asgi as a; "
    "print(before, gc.get_freeze_count() > 100_000, gc.get_threshold() == "
    "(r.YOUNG_GENERATION, *r.OLDER_GENERATIONS), a.app.title)"
)


def test_the_server_module_freezes_the_app_and_widens_the_young_generation(tmp_path: Path):
    env = {**os.environ, "FHIRHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'probe.db'}"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, frozen, threshold, _title = done.stdout.split(maxsplit=3)
    assert (before, frozen, threshold) == ("0", "True", "True")
