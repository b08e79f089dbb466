#!/usr/bin/env python3
"""fhirhub's two commands, needing nothing but Python 3.11+:

python3 dev.py run     install everything (locked) into .venv, then run fhirhub with its
                       embedded defaults (SQLite, in-process jobs, a demo city) on
                       http://127.0.0.1:8080/fhir
python3 dev.py run --port 9000 --demo 0
                       the same with serve's options (--host, --port, --workers, --demo N;
                       the demo city stays unless --demo says otherwise)
python3 dev.py run load DIR
                       any other fhirhub command: runs `fhirhub load DIR`
python3 dev.py test    install, then run the quality gate and the whole test suite
python3 dev.py test -k load -x
                       the same, passing the arguments on to pytest

python3 dev.py lock    (maintainers) re-resolve requirements.lock from pyproject.toml, and
                       requirements-bench.lock (the same plus the `bench` extra)
python3 dev.py bench-install
                       add the benchmark-only libraries (the `bench` extra: recordlinkage,
                       Splink, DuckDB), locked, to .venv; neither `run` nor `test` needs them
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
LOCK = ROOT / "requirements.lock"
BENCH_LOCK = ROOT / "requirements-bench.lock"
STAMP = VENV / ".fhirhub-installed"


def sh(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    code = subprocess.call([str(a) for a in args], cwd=ROOT, env=env)
    if code:
        sys.exit(code)


def install() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036  (dev.py may be run by an older python3)
        sys.exit("fhirhub needs Python 3.11 or newer")
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256(LOCK.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("installing the locked dependencies into .venv (the first time takes a few minutes)")
    # not --quiet: pip's lines are the progress of a step that takes a while
    sh(PY, "-m", "pip", "install", "--disable-pip-version-check", "-r", LOCK)
    sh(
        PY,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "-e",
        ".",
    )
    STAMP.write_text(wanted)


DEMO_PERSONS = "300"


def run_args(args: list[str]) -> list[str]:
    """The ``fhirhub`` arguments for ``python3 dev.py run ARGS``.

    No arguments, or options only (``--port 9000``): ``serve`` with those options and the demo
    city unless ``--demo`` is among them (``--demo 0``: none). ``serve ...`` is the same. A
    command name first (``load DIR``, ``inbox list``) runs that command as it is given.
    """
    if args and not args[0].startswith("-") and args[0] != "serve":
        return args
    options = args[1:] if args and args[0] == "serve" else args
    if any(a == "--demo" or a.startswith("--demo=") for a in options):
        return ["serve", *options]
    return ["serve", "--demo", DEMO_PERSONS, *options]


def run() -> None:
    install()
    os.execv(BIN / "fhirhub", [str(BIN / "fhirhub"), *run_args(sys.argv[2:])])


def test() -> None:
    install()
    sh(BIN / "ruff", "check", ".")
    sh(BIN / "ruff", "format", "--check", ".")
    sh(BIN / "lint-imports")
    sh(BIN / "mypy")
    workers = os.environ.get("FHIRHUB_TEST_WORKERS", "2")
    sh(PY, "-m", "pytest", "-n", workers, "--dist", "loadfile", *sys.argv[2:])


def lock() -> None:
    install()
    sh(PY, "-m", "pip", "install", "--quiet", "uv")
    common = ("--universal", "--python-version", "3.11", "--generate-hashes", "--quiet")
    # -o relative (run in ROOT): the lock's header names the command as run
    sh(BIN / "uv", "pip", "compile", "pyproject.toml", "--extra", "dev", *common, "-o", LOCK.name)
    # The bench lock holds the dev lock's versions (-c) and what the bench extra adds.
    sh(
        BIN / "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--extra",
        "dev",
        "--extra",
        "bench",
        "-c",
        LOCK.name,
        *common,
        "-o",
        BENCH_LOCK.name,
    )


def bench_install() -> None:
    install()
    sh(PY, "-m", "pip", "install", "--disable-pip-version-check", "-r", BENCH_LOCK)


if __name__ == "__main__":
    commands = {
        "run": run,
        "test": test,
        "lock": lock,
        "install": install,
        "bench-install": bench_install,
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]]()
