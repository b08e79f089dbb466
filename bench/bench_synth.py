"""Benchmark: generate a synthetic Baubau of N persons (default 200,000) to a directory and print
the wall time and the output size. Acceptance (issue 4): at most 10 minutes on the 2-core
development machine; over it, the script exits non-zero.

    .venv/bin/python bench/bench_synth.py [--persons 200000] [--seed 1] [--out /tmp/synth-bench]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from fhirhub.synth.generate import build
from fhirhub.synth.writer import write_city

BUDGET_S = 600  # seconds for 200,000 persons on the 2-core development machine (issue 4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/synth-bench"))
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if a.out.exists():
        shutil.rmtree(a.out)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    sc = build(a.persons, a.seed)
    t1 = time.perf_counter()
    sizes = write_city(sc, a.out, workers=a.workers)
    t2 = time.perf_counter()
    files = sum(len(f) for _, _, f in os.walk(a.out))
    cpu = sum(
        r.ru_utime + r.ru_stime
        for r in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    total = sum(sizes.values())
    print(
        f"persons={a.persons} generated={len(sc.persons)} "
        f"encounters={sum(len(p.events) for p in sc.persons)} cpus={os.cpu_count()}"
    )
    passed = t2 - t0 <= BUDGET_S
    print(
        f"model: {t1 - t0:.1f} s, writing: {t2 - t1:.1f} s, total: {t2 - t0:.1f} s "
        f"(budget {BUDGET_S} s) -> {'PASS' if passed else 'FAIL'}"
    )
    print(
        f"cpu time (all processes): {cpu:.1f} s; load average at start {load0:.1f}, "
        f"at end {os.getloadavg()[0]:.1f} (other work on the machine slows the wall time)"
    )
    print(f"output: {files} files, {total / 1e9:.2f} GB")
    for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {k}: {v / 1e6:.1f} MB")
    if not passed:
        sys.exit(f"FAILED: {t2 - t0:.1f} s is over the budget of {BUDGET_S} s")


if __name__ == "__main__":
    main()
