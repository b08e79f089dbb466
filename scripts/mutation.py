#!/usr/bin/env python3
"""Mutation testing of fhirhub's core modules with cosmic-ray (docs/testing.md).

Each module is mutated in a scratch copy of the work tree (never in the tree itself), one
mutant at a time, and only the test files that exercise it run against each mutant, on SQLite
only, stopping at the first failure. Slow: minutes per module; not part of CI.

    .venv/bin/python scripts/mutation.py                      # every core module, every mutant
    .venv/bin/python scripts/mutation.py ingest/canonical.py  # one module
    .venv/bin/python scripts/mutation.py --sample 80 services/writes.py   # 80 random mutants
    .venv/bin/python scripts/mutation.py --budget 1200 ...    # stop each module after 20 min
    .venv/bin/python scripts/mutation.py --report             # the tables of the last run
    .venv/bin/python scripts/mutation.py --rerun-survivors ingest/canonical.py  # after a fix
    .venv/bin/python scripts/mutation.py --rerun-survivors --skip-pending ...  # survivors only

Mutants of type annotations (``str | None`` -> ``str - None``) are never evaluated (the modules
use ``from __future__ import annotations``): they are marked equivalent before the run. The
survivors' diffs are written to ``<workdir>/<module>.survivors.txt`` for review; judge each one
equivalent (no test could tell it apart) or not, and kill the others with a test.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# module (under fhirhub/) -> the test files that exercise it
MODULES: dict[str, list[str]] = {
    "services/writes.py": [
        "tests/api/test_write_ordering.py",
        "tests/api/test_write_results.py",
        "tests/api/test_update_delete_patch.py",
        "tests/api/test_create_read.py",
        "tests/api/test_history.py",
        "tests/api/test_transaction.py",
    ],
    "services/transaction.py": [
        "tests/api/test_transaction_rules.py",
        "tests/api/test_transaction.py",
        "tests/api/test_fhirpy_client.py",
        "tests/api/test_write_ordering.py",
    ],
    "search/prefixes.py": [
        "tests/search/test_prefix_boundaries.py",
        "tests/search/test_param_types.py",
        "tests/search/test_last_updated.py",
    ],
    "search/clauses.py": [
        "tests/search/test_clause_edges.py",
        "tests/search/test_param_types.py",
        "tests/search/test_find_matches.py",
        "tests/search/test_custom_params.py",
    ],
    "ingest/canonical.py": [
        "tests/ingest/test_canonical.py",
        "tests/ingest/test_normalise.py",
        "tests/ingest/test_golden.py",
        "tests/ingest/test_puskesmas_adapter.py",
    ],
    "ingest/normalise.py": [
        "tests/ingest/test_normalise.py",
        "tests/ingest/test_golden.py",
        "tests/ingest/test_pipeline.py",
        "tests/ingest/test_puskesmas_adapter.py",
    ],
}

PYTEST = "python -m pytest -x -q -p no:xdist -p no:cacheprovider -k 'not postgresql'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths under fhirhub/ (default: all)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fhirhub-mutation"))
    parser.add_argument("--sample", type=int, help="run only this many random mutants")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--budget", type=float, help="seconds of mutant runs per module")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    parser.add_argument("--report", action="store_true", help="only print the last results")
    parser.add_argument("--rerun-survivors", action="store_true")
    parser.add_argument(
        "--skip-pending",
        action="store_true",
        help="mark the mutants not run yet as not sampled (with --rerun-survivors: only those)",
    )
    args = parser.parse_args()
    modules = [m.removeprefix("fhirhub/") for m in args.modules] or list(MODULES)
    for m in modules:
        if m not in MODULES:
            sys.exit(f"unknown module {m}; one of {', '.join(MODULES)}")
    tree = args.workdir / "tree"
    if not args.report:
        copy_tree(tree)
    rows = []
    for module in modules:
        session = args.workdir / (module.replace("/", "_") + ".sqlite")
        if not args.report:
            run_module(module, tree, session, args)
        if session.exists():
            rows.append(summary(module, session, args.workdir))
    print_table(rows)


def copy_tree(tree: Path) -> None:
    """A fresh copy of the tracked files (and the current edits) of the work tree."""
    if tree.exists():
        shutil.rmtree(tree)
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file():
            dst = tree / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def run_module(module: str, tree: Path, session: Path, args: argparse.Namespace) -> None:
    config = session.with_suffix(".toml")
    tests = " ".join(MODULES[module])
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "fhirhub/{module}"\n'
        f"timeout = {args.timeout}\n"
        "excluded-modules = []\n"
        f'test-command = "{PYTEST} {tests}"\n\n'
        '[cosmic-ray.distributor]\nname = "local"\n'
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cr = str(BIN / "cosmic-ray")
    if args.skip_pending and session.exists():
        keep_sample(session, 0, args.seed)
    if args.rerun_survivors and session.exists():
        with sqlite3.connect(session) as db:
            db.execute("DELETE FROM work_results WHERE lower(test_outcome) = 'survived'")
    elif not session.exists():
        subprocess.run([cr, "init", str(config), str(session)], cwd=tree, env=env, check=True)
        mark_annotations(session, tree / "fhirhub" / module)
        if args.sample:
            keep_sample(session, args.sample, args.seed)
    baseline = subprocess.run(f"nice -n 10 {PYTEST} {tests}", shell=True, cwd=tree, env=env)
    if baseline.returncode:
        sys.exit(f"the tests of {module} fail without any mutant: fix them first")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["nice", "-n", "10", cr, "exec", str(config), str(session)],
        cwd=tree,
        env=env,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=args.budget)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        # the mutant being tested may be left on disk: put the module back
        shutil.copy2(ROOT / "fhirhub" / module, tree / "fhirhub" / module)
        print(f"{module}: budget of {args.budget:.0f} s spent, the rest is pending")
    print(f"{module}: {time.monotonic() - started:.0f} s")


def _annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    spans = []
    for node in ast.walk(ast.parse(source)):
        annotations = []
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            annotations.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            annotations.append(node.returns)
        for a in annotations:
            end = (a.end_lineno or a.lineno, a.end_col_offset or 0)
            spans.append(((a.lineno, a.col_offset), end))
    return spans


def mark_annotations(session: Path, module: Path) -> None:
    """Mutants inside type annotations are equivalent: they are never evaluated."""
    spans = _annotation_spans(module.read_text())
    with sqlite3.connect(session) as db:
        specs = db.execute(
            "SELECT job_id, start_pos_row, start_pos_col, end_pos_row, end_pos_col "
            "FROM mutation_specs"
        ).fetchall()
        for job_id, sr, sc, er, ec in specs:
            if any(lo <= (sr, sc) and (er, ec) <= hi for lo, hi in spans):
                db.execute(
                    "INSERT INTO work_results (worker_outcome, output, test_outcome, job_id) "
                    "VALUES ('SKIPPED', 'equivalent: a type annotation', NULL, ?)",
                    (job_id,),
                )


def keep_sample(session: Path, n: int, seed: int) -> None:
    """Mark all but ``n`` random pending mutants as not sampled."""
    with sqlite3.connect(session) as db:
        pending = [
            r[0]
            for r in db.execute(
                "SELECT job_id FROM work_items WHERE job_id NOT IN "
                "(SELECT job_id FROM work_results) ORDER BY job_id"
            )
        ]
        chosen = set(random.Random(seed).sample(pending, min(n, len(pending))))
        for job_id in pending:
            if job_id not in chosen:
                db.execute(
                    "INSERT INTO work_results (worker_outcome, output, test_outcome, job_id) "
                    "VALUES ('SKIPPED', 'not sampled', NULL, ?)",
                    (job_id,),
                )


def summary(module: str, session: Path, workdir: Path) -> dict[str, object]:
    with sqlite3.connect(session) as db:
        total = db.execute("SELECT count(*) FROM work_items").fetchone()[0]
        results = db.execute(
            "SELECT r.job_id, r.worker_outcome, r.output, r.test_outcome, r.diff, "
            "s.operator_name, s.start_pos_row FROM work_results r "
            "JOIN mutation_specs s USING (job_id)"
        ).fetchall()
    counts = {"annotation": 0, "not sampled": 0, "killed": 0, "survived": 0}
    survivors = []
    for _job, worker, output, outcome, diff, operator, row in results:
        worker, outcome = (worker or "").lower(), (outcome or "").lower()
        if worker == "skipped":
            counts["annotation" if output and "annotation" in output else "not sampled"] += 1
        elif outcome == "survived":
            counts["survived"] += 1
            survivors.append(f"--- line {row}: {operator}\n{diff}")
        else:  # killed, incompetent (the mutant cannot run), timeout
            counts["killed"] += 1
    out = workdir / (module.replace("/", "_") + ".survivors.txt")
    out.write_text("\n".join(survivors))
    ran = counts["killed"] + counts["survived"]
    pending = total - len(results)
    return {
        "module": module,
        "mutants": total,
        "annotation (equivalent)": counts["annotation"],
        "not sampled": counts["not sampled"],
        "pending": pending,
        "ran": ran,
        "killed": counts["killed"],
        "survived": counts["survived"],
        "kill rate": f"{counts['killed'] / ran:.0%}" if ran else "-",
        "survivors file": str(out),
    }


def print_table(rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    keys = [k for k in rows[0] if k != "survivors file"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    print(json.dumps({r["module"]: r["survivors file"] for r in rows}, indent=1))


if __name__ == "__main__":
    main()
