"""Writes a synthetic city to a directory (layout in docs/synth.md). Work is split into tasks
(one per Puskesmas, the RSUD, BPJS, SATUSEHAT, truth) whose output depends only on the city
model, so they may run in parallel worker processes and still give the same bytes."""

from __future__ import annotations

import csv
import gc
import io
import json
import multiprocessing
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from . import generate as g
from .generate import SynthCity

_CITY: SynthCity | None = None  # set before forking workers


def _write(path: Path, data: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def write_csv(path: Path, header: list[str], rows) -> int:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return _write(path, buf.getvalue().encode())


def task_reference(sc: SynthCity, out: Path) -> int:
    return _write(out / "reference" / "city.json", orjson.dumps(g.reference_bundle(sc)))


def task_puskesmas(sc: SynthCity, out: Path, code: str) -> int:
    fac = sc.city.facility(code)
    size = 0
    for i, b in enumerate(g.puskesmas_bundles(sc, fac), start=1):
        size += _write(out / "puskesmas" / code / f"bundle-{i:04d}.json", orjson.dumps(b))
    return size


def task_truth_persons(sc: SynthCity, out: Path) -> int:
    rows = []
    for rec in sc.records.values():
        rows.append(
            (
                rec.source,
                rec.facility,
                rec.system,
                rec.value,
                rec.pid,
                "newborn" if rec.newborn else "main",
                "|".join(rec.errors),
            )
        )
    for rec in sc.bpjs_records.values():
        rows.append((rec.source, rec.facility, rec.system, rec.value, rec.pid, "main", ""))
    for rec in sc.ss_records.values():
        rows.append((rec.source, rec.facility, rec.system, rec.value, rec.pid, "main", ""))
    rows.sort(key=lambda r: (r[4], r[0], r[1], r[3]))
    size = write_csv(
        out / "truth" / "persons.csv",
        ["source", "facility", "system", "value", "person_id", "record", "errors"],
        rows,
    )
    people = []
    for p in sc.persons:
        people.append(
            (
                p.pid,
                p.household,
                p.sex,
                p.birth.isoformat(),
                p.kelurahan,
                sc.city.puskesmas_of(p.kelurahan).code,
                p.group,
                p.mother if p.mother is not None else "",
                p.father if p.father is not None else "",
                p.multiple_birth,
                p.moved_in.isoformat() if p.moved_in else "",
                p.moved_out.isoformat() if p.moved_out else "",
                p.death.isoformat() if p.death else "",
            )
        )
    size += write_csv(
        out / "truth" / "people.csv",
        [
            "person_id",
            "household",
            "sex",
            "birth_date",
            "kelurahan",
            "puskesmas",
            "group",
            "mother",
            "father",
            "multiple_birth",
            "moved_in",
            "moved_out",
            "death_date",
        ],
        people,
    )
    return size


def _tasks(sc: SynthCity) -> list[tuple[str, tuple]]:
    """Every task, the largest first so that the workers finish together."""
    from . import sources, truth

    load: dict[str, int] = {}
    for p in sc.persons:
        for e in p.events:
            load[e.facility] = load.get(e.facility, 0) + 1
    sized: list[tuple[float, str, tuple]] = []
    for name, args in sources.tasks(sc):
        weight = load.get(args[0], 0) * 0.7 if args else len(sc.persons) * 0.5
        sized.append((weight, name, args))
    for f in sc.city.puskesmas:
        sized.append((load.get(f.code, 0), "puskesmas", (f.code,)))
    sized.append((len(sc.persons) * 2.0, "truth_indicators", ()))
    sized.append((len(sc.persons) * 0.2, "truth_persons", ()))
    sized.append((0, "reference", ()))
    sized.sort(key=lambda t: (-t[0], t[1], t[2]))
    assert set(truth.TASKS) <= {n for _, n, _ in sized}
    return [(n, a) for _, n, a in sized]


def _run(name: str, args: tuple, out: Path) -> tuple[str, int]:
    sc = _CITY
    assert sc is not None
    from . import sources, truth

    table: dict[str, Callable[..., int]] = {
        "reference": task_reference,
        "puskesmas": task_puskesmas,
        "truth_persons": task_truth_persons,
        **sources.TASKS,
        **truth.TASKS,
    }
    fn = table[name]
    return name + ("/" + args[0] if args else ""), fn(sc, out, *args)


def _run_star(item: tuple[str, tuple, Path]) -> tuple[str, int]:
    # rendering allocates many short-lived, acyclic dicts: reference counting frees them
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(*item)
    finally:
        if was_enabled:
            gc.enable()


OWN_DIRS = ("reference", "puskesmas", "rsud", "bpjs", "satusehat", "truth")


def _prepare(out: Path) -> None:
    """An empty directory, or one a previous run wrote (its files are replaced, so that no
    stale bundle of a larger city survives); anything else is refused."""
    if out.exists() and any(out.iterdir()):
        if not (out / "manifest.json").exists():
            raise FileExistsError(f"{out} is not empty and was not written by fhirhub synth")
        for name in OWN_DIRS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        for name in ("manifest.json", "stats.json"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def write_city(
    sc: SynthCity,
    out: Path,
    workers: int = 2,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    global _CITY
    _prepare(out)
    _CITY = sc
    tasks = _tasks(sc)
    sizes: dict[str, int] = {}
    items = [(n, a, out) for n, a in tasks]
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            for i, (name, size) in enumerate(pool.imap(_run_star, items), start=1):
                sizes[name] = size
                if progress:
                    progress(name, i, len(items))
    else:
        for i, item in enumerate(items, start=1):
            name, size = _run_star(item)
            sizes[name] = size
            if progress:
                progress(name, i, len(items))
    _CITY = None
    manifest = {
        "generator": "fhirhub.synth",
        "seed": sc.seed,
        "persons_at_start": sum(
            1 for p in sc.persons if p.moved_in is None and p.birth < sc.pop.window_start
        ),
        "persons_total": len(sc.persons),
        "window": [sc.pop.window_start.isoformat(), sc.today.isoformat()],
        "period": [sc.period[0].isoformat(), sc.period[1].isoformat()],
        "bytes": dict(sorted(sizes.items())),
    }
    _write(out / "manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return sizes


def written_patients(out: Path) -> list[dict[str, Any]]:
    """The Patients a written city's sources hold: each Puskesmas Bundle's, then SATUSEHAT's
    (for matching the records against the truth in ``truth/persons.csv``)."""
    found: list[dict[str, Any]] = []
    for path in sorted((out / "puskesmas").glob("*/*.json")):
        resources = [e["resource"] for e in json.loads(path.read_text())["entry"]]
        found += [r for r in resources if r["resourceType"] == "Patient"]
    with (out / "satusehat" / "Patient.ndjson").open() as f:
        found += [json.loads(line) for line in f if line.strip()]
    return found
