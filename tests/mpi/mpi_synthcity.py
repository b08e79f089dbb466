"""Load the FHIR Patients of a synthetic city with their true person, and measure linkage."""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from fhirhub.mpi.cluster import cluster
from fhirhub.mpi.features import IHS_NUMBER, MRN_BASE, Features, extract
from fhirhub.mpi.score import LINK, Model, candidate_pairs, decide
from fhirhub.synth.writer import written_patients


@dataclass
class City:
    records: list[Features]
    person: list[str]  # true person id of each record
    twins: set[frozenset[str]]  # pairs of persons that are twins
    parent_child: set[frozenset[str]]


def load(out: Path) -> City:
    truth = {}
    with (out / "truth" / "persons.csv").open() as f:
        for row in csv.DictReader(f):
            truth[(row["system"], row["value"])] = row["person_id"]
    patients = written_patients(out)
    records, person = [], []
    for p in patients:
        key = next(
            (i["system"], i["value"])
            for i in p["identifier"]
            if i["system"].startswith(MRN_BASE) or i["system"] == IHS_NUMBER
        )
        records.append(extract(p))
        person.append(truth[key])
    twins, parent_child = set(), set()
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
    return City(records, person, twins, parent_child)


@dataclass
class Accuracy:
    precision: float
    recall: float
    f1: float
    hard_negatives_merged: int  # twins, parent and child, same-name neighbours
    false_pairs: int


def link_and_measure(city: City, model: Model) -> Accuracy:
    """Block, score every candidate pair, cluster at the link threshold, compare with truth."""
    links, cannot = [], []
    for i, j in candidate_pairs(city.records):
        d = decide(model, city.records[i], city.records[j])
        if d.band == LINK:
            links.append((d.probability, i, j))
        elif d.reasons and d.band != "review":
            cannot.append((i, j))
    labels = cluster(len(city.records), links, cannot)
    predicted = _pairs(labels)
    true = _pairs(city.person)
    tp = len(predicted & true)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    hard = 0
    for i, j in predicted - true:
        a, b = city.records[i], city.records[j]
        pair = frozenset((city.person[i], city.person[j]))
        neighbours = (
            a.name is not None
            and b.name is not None
            and a.name.key == b.name.key
            and a.kelurahan == b.kelurahan
        )
        hard += pair in city.twins or pair in city.parent_child or neighbours
    return Accuracy(precision, recall, f1, hard, len(predicted - true))


def _pairs(labels: list) -> set[tuple[int, int]]:
    groups = defaultdict(list)
    for i, label in enumerate(labels):
        groups[label].append(i)
    return {pair for g in groups.values() for pair in itertools.combinations(g, 2)}
