"""Summarise py-spy speedscope profiles (written by a benchmark's ``--profile DIR``).

Prints where the server's sampled time goes: inclusive time per function (the share of samples
with the function anywhere on the stack) and self time (at the top of the stack), over every
worker's profile in DIR. Idle samples (threads waiting for work) are left out.

    .venv/bin/python bench/profile_summary.py DIR [--top 40] [--match fhirhub]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

IDLE = (
    "_worker (concurrent/futures/thread.py",
    "select (selectors.py",
    "run_forever",
    "wait (threading.py",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="", help="only list functions whose file contains this")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in sorted(Path(args.dir).glob("*.json")):
        data = json.loads(path.read_text())
        frames = data["shared"]["frames"]
        names = [f"{f['name']} ({_short(f.get('file', ''))}:{f.get('line', 0)})" for f in frames]
        funcs = [f"{f['name']} ({_short(f.get('file', ''))})" for f in frames]
        for profile in data["profiles"]:
            for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
                if not stack:
                    continue
                top = names[stack[-1]]
                if any(top.startswith(i) or i in top for i in IDLE) or _idle(stack, funcs):
                    continue
                total += weight
                own[funcs[stack[-1]]] += weight
                for f in {funcs[i] for i in stack}:
                    inclusive[f] += weight
    if not total:
        print("no busy samples")
        return
    print(f"busy samples: {total}")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title} time, top {args.top}")
        shown = 0
        for name, weight in counter.most_common():
            if args.match and args.match not in name:
                continue
            print(f"{weight / total:6.1%}  {name}")
            shown += 1
            if shown >= args.top:
                break


def _idle(stack: list[int], funcs: list[str]) -> bool:
    top = funcs[stack[-1]]
    return top.startswith(("wait (", "_worker (", "select (", "poll (")) and "psycopg" not in top


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


if __name__ == "__main__":
    main()
