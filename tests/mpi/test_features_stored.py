"""The stored form of a record's features (fhirhub.mpi.features.encode / decode): the patient
index keeps it beside the record's Person and compares candidates from it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from fhirhub.model.systems import ADMINISTRATIVE_CODE as ADMIN
from fhirhub.model.systems import BPJS_CARD, IHS_NUMBER, NIK, NIK_IBU
from fhirhub.model.systems import MRN_BASE as MRN
from fhirhub.mpi.features import FEATURES_FORMAT, Features, decode, encode, extract
from fhirhub.synth.generate import build
from fhirhub.synth.writer import write_city, written_patients

# Records that between them set every field of Features, each kind of name included.
SAMPLES: list[dict] = [
    {"resourceType": "Patient"},
    {
        "resourceType": "Patient",
        "id": "a",
        "identifier": [
            {"system": NIK, "value": "7472014501900001"},
            {"system": BPJS_CARD, "value": "0001234567890"},
            {"system": IHS_NUMBER, "value": "p0123"},
            {"system": MRN + "pkm05", "value": "RM-01"},
            {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "123-45-6789"},
        ],
        "name": [{"text": "Hj. Wa Ode Sitti Aminah binti La Ode Hasan, S.Pd."}],
        "gender": "female",
        "birthDate": "1990-01-05",
        "multipleBirthInteger": 2,
        "telecom": [{"system": "phone", "value": "+62 812-3456-7890"}],
        "address": [
            {
                "use": "home",
                "line": ["Jl. Betoambari No. 91"],
                "city": "Baubau",
                "postalCode": "93724",
                "extension": [
                    {
                        "url": ADMIN,
                        "extension": [
                            {"url": "village", "valueCode": "7472011001"},
                            {"url": "rt", "valueCode": "002"},
                            {"url": "rw", "valueCode": "003"},
                        ],
                    }
                ],
            }
        ],
    },
    {
        "resourceType": "Patient",
        "id": "b",
        "identifier": [
            {"system": NIK, "value": "7472010101900001"},  # a man's NIK on a woman born 1991
            {"system": NIK_IBU, "value": "7472014501900001"},
        ],
        "name": [{"text": "By. Ny. Siti"}],
        "gender": "female",
        "birthDate": "1991-06-30",
        "multipleBirthBoolean": False,
    },
]


def test_every_sample_reads_back_equal() -> None:
    for p in SAMPLES:
        f = extract(p)
        assert decode(encode(f)) == f


def test_every_record_of_a_synthetic_city_reads_back_equal(tmp_path: Path) -> None:
    write_city(build(120, 11), tmp_path, workers=1)
    records = [extract(p) for p in written_patients(tmp_path)]
    assert len(records) > 100
    for f in records:
        assert decode(encode(f)) == f


def test_a_form_of_another_format_is_not_read() -> None:
    old = orjson.loads(encode(extract(SAMPLES[1])))
    old[0] = FEATURES_FORMAT - 1
    assert decode(orjson.dumps(old).decode()) is None


def test_a_change_to_what_extract_returns_raises_the_format() -> None:
    """The stored form of the samples, by format: a change to ``extract`` or to the stored
    form changes it. Then raise FEATURES_FORMAT (so stored forms of the old one are not read)
    and record the new digest here."""
    digest = hashlib.sha256(
        "\n".join(encode(extract(p, today=None)) for p in SAMPLES).encode()
    ).hexdigest()
    known = {1: DIGEST_1}
    assert known.get(FEATURES_FORMAT) == digest, (
        f"features changed: raise FEATURES_FORMAT and record {digest}"
    )


def test_every_field_is_stored() -> None:
    """A field added to Features must be added to the stored form (the samples set them all)."""
    f = extract(SAMPLES[1])
    assert len(orjson.loads(encode(f))) == 1 + len(Features.__dataclass_fields__)
    defaults = Features(None, None, None, None, None, None, None, None)
    set_somewhere = {
        name
        for name in Features.__dataclass_fields__
        if any(getattr(extract(p), name) != getattr(defaults, name) for p in SAMPLES)
    }
    assert set_somewhere == set(Features.__dataclass_fields__)


DIGEST_1 = "465cb78c90da0f0204c0cdf8fb2eef2d31f09a2563e0473a16715a3ee43998bb"


def test_a_process_that_never_saw_a_candidate_compares_it_without_reading_its_body(
    engine, monkeypatch
) -> None:
    from fhirhub.mpi import store
    from fhirhub.services import patient_index

    def write(pid: str, name: str) -> None:
        _write(engine, pid, {**SAMPLES[1], "id": pid, "name": [{"text": name}]})

    write("first", "Wa Ode Sitti Aminah")
    write("first", "Wa Ode Siti Aminah")  # an update: the stored features follow it
    patient_index._FEATURES.clear()  # as in another worker process

    def no_body(*args, **kwargs):
        raise AssertionError("a candidate's body was read")

    monkeypatch.setattr(store, "patient_versions", no_body)
    write("second", "Waode Siti Aminah")
    with engine.connect() as conn:
        where = store.memberships(conn, ["first", "second"])
    assert where["first"].person_id == where["second"].person_id


def _write(engine, pid: str, body: dict | None, on: bool = True) -> None:
    """Write (``body``) or delete (None) a Patient, with the index ``on`` or off."""
    from fhirhub.services.patient_index import PatientIndex
    from fhirhub.services.writes import Writer
    from fhirhub.storage.repository import ResourceRepository

    with engine.begin() as conn:
        w = Writer(ResourceRepository(conn), patient_index=PatientIndex() if on else False)
        if body is None:
            w.delete("Patient", pid)
        else:
            w.update("Patient", pid, body)
        w.flush()


def _stored(engine, pid: str):
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(
            text("SELECT features, features_at FROM mpi_records WHERE patient_id = :p"), {"p": pid}
        ).one()


def test_a_record_written_while_the_index_is_off_is_compared_as_it_is_now(engine) -> None:
    """Stored features are taken for the current version's without looking it up: a write the
    index does not place (it is off) drops them, and a candidate without them is read."""
    from fhirhub.mpi import store
    from fhirhub.services import patient_index

    old = {**SAMPLES[1], "id": "p"}
    # her NIK corrected: the old one and hers, two valid NIKs, forbid a link
    now = {**old, "identifier": [{"system": NIK, "value": "7472014501900002"}]}
    _write(engine, "p", old)
    assert _stored(engine, "p").features is not None
    _write(engine, "p", now, on=False)  # the index off: the record's NIK is corrected
    assert tuple(_stored(engine, "p")) == (None, None)
    patient_index._FEATURES.clear()  # as in another worker process
    _write(engine, "q", {**now, "id": "q"})  # the same woman, as the record now says
    with engine.connect() as conn:
        where = store.memberships(conn, ["p", "q"])
    assert where["q"].person_id == where["p"].person_id
    stored = _stored(engine, "q")
    assert stored.features is not None and decode(stored.features) == extract({**now, "id": "q"})


def test_a_record_deleted_while_the_index_is_off_is_nobodys_candidate(engine) -> None:
    from fhirhub.mpi import store

    body = {**SAMPLES[1], "id": "gone"}
    _write(engine, "gone", body)
    _write(engine, "gone", None, on=False)
    assert tuple(_stored(engine, "gone")) == (None, None)
    _write(engine, "again", {**body, "id": "again"})
    with engine.connect() as conn:
        where = store.memberships(conn, ["gone", "again"])
    assert where["again"].person_id != where["gone"].person_id


def test_a_rebuild_stores_the_features_of_the_version_it_places(engine) -> None:
    """A record written after the rebuild read every record is placed, and its features stored,
    as it is now, not as the rebuild first read it."""
    from fhirhub.services.patient_index import PatientIndex
    from fhirhub.services.writes import Writer
    from fhirhub.storage.repository import ResourceRepository

    first = {**SAMPLES[1], "id": "r", "name": [{"text": "Wa Ode Ani"}]}
    _write(engine, "r", first)
    read_then = _stored(engine, "r").features_at
    known, stamps = {"r": extract(first)}, {"r": read_then}
    changed = {**first, "name": [{"text": "Wa Ode Sitti Aminah"}]}
    _write(engine, "r", changed)
    with engine.begin() as conn:
        index = PatientIndex()
        w = Writer(ResourceRepository(conn), patient_index=index)
        index.rematch(w, ["r"], known=known, stamps=stamps)
        w.flush()
    stored = _stored(engine, "r")
    assert stored.features_at != read_then and stamps["r"] == stored.features_at
    assert decode(stored.features) == extract(changed) == known["r"]


def test_an_update_that_leaves_its_record_in_its_person_stores_its_new_features(engine) -> None:
    """On PostgreSQL the features of a record that has a Person are written with the gather's
    reads; the record staying where it is, nothing else writes them."""
    from sqlalchemy import text

    from fhirhub.mpi import store

    first = {**SAMPLES[1], "id": "u"}
    _write(engine, "u", first)
    with engine.connect() as conn:
        before = store.memberships(conn, ["u"])["u"]
    changed = {**first, "telecom": [{"system": "phone", "value": "+62 813-1111-2222"}]}
    _write(engine, "u", changed)
    with engine.connect() as conn:
        assert store.memberships(conn, ["u"])["u"] == before
        current = conn.execute(
            text("SELECT last_updated FROM resources WHERE res_type = 'Patient' AND res_id = 'u'")
        ).scalar_one()
    stored = _stored(engine, "u")
    assert stored.features_at == current
    assert decode(stored.features) == extract(changed) != extract(first)
