"""A Person's search index rows taken from its record's (fhirhub.search.indexing.
index_rows_borrowing): the same rows the Person's own extraction gives."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fhirhub.search.indexing import borrowable, index_rows
from fhirhub.services.patient_index import DEMOGRAPHICS, _Flush, _person_rows, person_body
from fhirhub.synth.generate import build
from fhirhub.synth.writer import write_city, written_patients


def _as_multiset(rows: dict) -> dict[str, Counter]:
    return {
        table: Counter(tuple(sorted(r.items())) for r in rs) for table, rs in rows.items() if rs
    }


def test_a_person_of_one_record_gets_the_rows_of_its_own_extraction(tmp_path: Path) -> None:
    write_city(build(120, 13), tmp_path, workers=1)
    patients = written_patients(tmp_path)
    assert len(patients) > 100
    for i, p in enumerate(patients):
        p.setdefault("id", f"p{i}")
        person = person_body("person-1", {p["id"]: "level3"}, {p["id"]: p})
        todo = _Flush(rows={p["id"]: index_rows(p)})
        borrowed = _person_rows(person, {p["id"]: p}, todo)
        assert borrowed is not None
        assert _as_multiset(borrowed) == _as_multiset(index_rows(person))


def test_the_person_s_demographic_parameters_are_borrowed() -> None:
    shared = borrowable("Patient", "Person", DEMOGRAPHICS)
    assert {"name", "address", "address-city", "birthdate", "gender", "phone", "telecom"} <= shared
    assert not shared & {"identifier", "link", "_source", "organization"}


def test_a_person_whose_demographics_come_from_two_records_is_extracted() -> None:
    older = {
        "resourceType": "Patient",
        "id": "a",
        "meta": {"lastUpdated": "2024-01-01T00:00:00Z", "source": "https://x/source/bpjs/1"},
        "name": [{"text": "Wa Ode Sitti"}],
        "birthDate": "1990-01-05",
    }
    newer = {
        "resourceType": "Patient",
        "id": "b",
        "meta": {"lastUpdated": "2025-01-01T00:00:00Z"},
        "name": [{"text": "Waode Siti"}],
        "address": [{"city": "Baubau"}],
    }
    records = {"a": older, "b": newer}
    person = person_body("person-1", {"a": "level3", "b": "level3"}, records)
    assert person["name"] is older["name"] and person["address"] is newer["address"]
    todo = _Flush(rows={"a": index_rows(older), "b": index_rows(newer)})
    assert _person_rows(person, records, todo) is None  # the Writer extracts them
