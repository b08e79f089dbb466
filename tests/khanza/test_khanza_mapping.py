"""The Khanza adapter's mapping of one visit (no database): the visit's identity is the rule
every channel uses, Khanza's statuses and payers mean what they say, bad rows are rejected with
the path of the bad value, and no payload makes the adapter fail in another way."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.puskesmas.adapter import _idempotent_requests
from adapters.rsud.khanza import KhanzaAdapter, adapter
from fhirhub.errors import FhirError
from fhirhub.ingest import Context, Message
from fhirhub.ingest.visits import child_id, encounter_id

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = Context(mappings_dir=ROOT / "mappings", terminology_dir=ROOT / "terminology")
RSUD_VISITS = "http://sys-ids.kemkes.go.id/encounter/10085099"

VISIT: dict[str, Any] = {
    "reg_periksa": {
        "no_rawat": "2024/03/05/000042",
        "tgl_registrasi": "2024-03-05",
        "jam_reg": "07:45:10",
        "no_rkm_medis": "000123",
        "kd_poli": "INT",
        "stts": "Sudah",
        "status_lanjut": "Ralan",
        "kd_pj": "BPJ",
    },
    "pasien": {
        "no_rkm_medis": "000123",
        "nm_pasien": "WA ODE TEST",
        "no_ktp": "7472025608780001",
        "jk": "P",
        "tgl_lahir": "1978-08-16",
        "nm_ibu": "-",
        "alamat": "JL. BETOAMBARI NO. 5",
        "stts_nikah": "MENIKAH",
        "no_tlp": "0812-3456-7890",
        "kd_pj": "BPJ",
        "no_peserta": "17073084",
        "kd_kel": 3,
    },
    "diagnosa_pasien": [
        {"no_rawat": "2024/03/05/000042", "kd_penyakit": "i10", "status": "Ralan", "prioritas": 2},
        {"no_rawat": "2024/03/05/000042", "kd_penyakit": "E119", "status": "Ralan", "prioritas": 1},
    ],
    "penyakit": [{"kd_penyakit": "E119", "nm_penyakit": "Diabetes mellitus tipe 2"}],
    "prosedur_pasien": [],
    "icd9": [],
    "penjab": {"kd_pj": "BPJ", "png_jawab": "PIUTANG BPJS"},
    "poliklinik": {"kd_poli": "INT", "nm_poli": "Poli Penyakit Dalam"},
    "kelurahan": {"kd_kel": 3, "nm_kel": "BATARAGURU"},
    "kecamatan": {"kd_kec": 2, "nm_kec": "WOLIO"},
    "kabupaten": {"kd_kab": 1, "nm_kab": "KOTA BAUBAU"},
    "propinsi": {"kd_prop": 1, "nm_prop": "SULAWESI TENGGARA"},
}


def mapped(visit: dict[str, Any], sender: str | None = "RSUD01") -> dict[str, Any]:
    message = Message(1, "khanza", sender, "application/json", 0, orjson.dumps(visit))
    return adapter.map(message, CONTEXT).bundle


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def edited(**changes: dict[str, Any]) -> dict[str, Any]:
    visit = copy.deepcopy(VISIT)
    for table, values in changes.items():
        visit[table].update(values)
    return visit


def test_the_encounter_id_is_the_puskesmas_rule_applied_to_the_visit_identifier():
    """The Puskesmas adapter, given an Encounter with the RSUD's visit identifier (as the HL7
    v2 feed makes from PV1-19), derives the very ids the Khanza mapping gives the visit."""
    bundle = mapped(VISIT)
    (encounter,) = resources(bundle, "Encounter")
    no_rawat = VISIT["reg_periksa"]["no_rawat"]
    assert encounter["identifier"] == [{"system": RSUD_VISITS, "value": no_rawat}]
    entries = [
        {
            "fullUrl": "urn:uuid:e",
            "resource": {"resourceType": "Encounter", "identifier": encounter["identifier"]},
            "request": {"method": "POST", "url": "Encounter"},
        },
        *(
            {
                "fullUrl": f"urn:uuid:c{n}",
                "resource": {"resourceType": "Condition", "encounter": {"reference": "urn:uuid:e"}},
                "request": {"method": "POST", "url": "Condition"},
            }
            for n in range(2)
        ),
    ]
    _idempotent_requests(entries)
    assert entries[0]["resource"]["id"] == encounter["id"] == encounter_id(RSUD_VISITS, no_rawat)
    assert [e["resource"]["id"] for e in entries[1:]] == [
        c["id"] for c in resources(bundle, "Condition")
    ]
    put = next(e for e in bundle["entry"] if e["resource"] is encounter)
    assert put["request"] == {"method": "PUT", "url": f"Encounter/{encounter['id']}"}


def test_diagnoses_follow_prioritas_with_clean_icd10_and_names():
    bundle = mapped(VISIT)
    conditions = resources(bundle, "Condition")
    no_rawat = VISIT["reg_periksa"]["no_rawat"]
    assert [c["id"] for c in conditions] == [
        child_id(RSUD_VISITS, no_rawat, "Condition", n) for n in range(2)
    ]
    first, second = (c["code"]["coding"][0] for c in conditions)
    assert first == {
        "system": "http://hl7.org/fhir/sid/icd-10",
        "code": "E11.9",
        "display": "Diabetes mellitus tipe 2",
    }
    assert second == {"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}
    (encounter,) = resources(bundle, "Encounter")
    assert [d["rank"] for d in encounter["diagnosis"]] == [1, 2]
    assert encounter["period"] == {"start": "2024-03-05T07:45:10+08:00"}
    assert encounter["class"]["code"] == "AMB" and encounter["status"] == "finished"


def test_the_patient_carries_record_number_nik_card_and_kelurahan_code():
    (patient,) = resources(mapped(VISIT), "Patient")
    assert patient["identifier"] == [
        {
            "use": "usual",
            "system": "https://fhirhub.baubaukota.go.id/sid/mrn/rsud01",
            "value": "000123",
        },
        {
            "use": "official",
            "system": "https://fhir.kemkes.go.id/id/nik",
            "value": "7472025608780001",
        },
        {"system": "https://fhir.bpjs-kesehatan.go.id/id/no-kartu", "value": "17073084"},
    ]
    address = patient["address"][0]
    village = address["extension"][0]["extension"][3]
    assert village == {"url": "village", "valueCode": "7472021003"}  # Bataraguru
    assert address["district"] == "WOLIO" and address["line"] == ["JL. BETOAMBARI NO. 5"]
    assert patient["maritalStatus"]["coding"][0]["code"] == "M"
    assert "contact" not in patient  # nm_ibu "-" is no name


def test_a_kelurahan_name_no_region_knows_stays_text():
    visit = edited(kelurahan={"nm_kel": "ANTAH BERANTAH"})
    (patient,) = resources(mapped(visit), "Patient")
    assert "extension" not in patient["address"][0]
    assert patient["address"][0]["text"] == "JL. BETOAMBARI NO. 5, Kel. ANTAH BERANTAH"


@pytest.mark.parametrize(
    ("stts", "lanjut", "poli", "status", "klass", "disposition"),
    [
        ("Batal", "Ralan", "INT", "cancelled", "AMB", None),
        ("Meninggal", "Ranap", "INT", "finished", "IMP", "exp"),
        ("Dirujuk", "Ralan", "IGD", "finished", "EMER", "other-hcf"),
        ("Dirawat", "Ranap", "ANA", "in-progress", "IMP", None),
        ("Pulang Paksa", "Ranap", "OBG", "finished", "IMP", "aadvice"),
        ("Belum", "Ralan", "INT", "arrived", "AMB", None),
        (None, "Ralan", "INT", "unknown", "AMB", None),
    ],
)
def test_khanza_statuses(stts, lanjut, poli, status, klass, disposition):
    visit = edited(reg_periksa={"stts": stts, "status_lanjut": lanjut, "kd_poli": poli})
    (encounter,) = resources(mapped(visit), "Encounter")
    assert (encounter["status"], encounter["class"]["code"]) == (status, klass)
    found = encounter.get("hospitalization", {}).get("dischargeDisposition", {})
    assert (found["coding"][0]["code"] if found else None) == disposition


def test_a_bpjs_visit_has_a_coverage_on_the_card_and_a_paying_patient_none():
    (coverage,) = resources(mapped(VISIT), "Coverage")
    assert coverage["identifier"] == [
        {"system": "https://fhir.bpjs-kesehatan.go.id/id/no-kartu", "value": "0000017073084"}
    ]
    assert coverage["payor"] == [{"display": "PIUTANG BPJS"}]
    entry = next(e for e in mapped(VISIT)["entry"] if e["resource"]["resourceType"] == "Coverage")
    assert entry["request"]["ifNoneExist"].endswith("|0000017073084")
    assert resources(mapped(edited(reg_periksa={"kd_pj": "UMU"})), "Coverage") == []
    assert resources(mapped(edited(pasien={"no_peserta": "-"})), "Coverage") == []
    assert resources(mapped(edited(reg_periksa={"kd_pj": "A09"})), "Coverage") == []


def test_a_local_disease_code_rejects_the_visit_with_its_path():
    visit = copy.deepcopy(VISIT)
    visit["diagnosa_pasien"][1]["kd_penyakit"] = "AB001"
    with pytest.raises(FhirError) as err:
        mapped(visit)
    assert err.value.status == 422
    (issue,) = err.value.issues
    assert issue.code == "code-invalid"
    assert issue.expression == ("diagnosa_pasien[0].kd_penyakit",)  # first by prioritas


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (b"not json", None),
        (b"[]", None),
        (orjson.dumps({**VISIT, "pasien": None}), "pasien"),
        (orjson.dumps(edited(reg_periksa={"no_rawat": " "})), "reg_periksa.no_rawat"),
    ],
)
def test_rows_that_are_no_visit_are_refused(payload: bytes, where: str | None):
    message = Message(1, "khanza", "RSUD01", "application/json", 0, payload)
    with pytest.raises(FhirError) as err:
        adapter.map(message, CONTEXT)
    assert err.value.status == 400
    if where:
        assert err.value.issues[0].expression == (where,)


def test_an_unknown_hospital_is_refused():
    with pytest.raises(FhirError) as err:
        mapped(VISIT, sender="RSUD99")
    assert err.value.status == 422
    assert isinstance(adapter, KhanzaAdapter) and mapped(VISIT, sender=None)


_value = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.integers(-5, 10**6),
    st.sampled_from(["", "-", "0", "2024-01-01", "25:61:00", "0000-00-00", "Ranap", "L", "P"]),
)
_row = st.dictionaries(
    st.sampled_from(
        [
            "no_rawat",
            "no_rkm_medis",
            "tgl_registrasi",
            "jam_reg",
            "stts",
            "status_lanjut",
            "kd_poli",
            "kd_pj",
            "kd_penyakit",
            "prioritas",
            "kode",
            "no_ktp",
            "no_peserta",
            "jk",
            "tgl_lahir",
            "nm_kel",
            "stts_nikah",
            "nm_ibu",
        ]
    ),
    _value,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reg=_row,
    pasien=_row,
    diagnoses=st.lists(_row, max_size=3),
    procedures=st.lists(_row, max_size=2),
    kelurahan=st.one_of(st.none(), _row),
)
def test_any_rows_map_to_a_transaction_or_a_fhir_error(
    reg, pasien, diagnoses, procedures, kelurahan
):
    visit = {
        "reg_periksa": reg,
        "pasien": pasien,
        "diagnosa_pasien": diagnoses,
        "prosedur_pasien": procedures,
        "kelurahan": kelurahan,
    }
    try:
        bundle = mapped(visit)
    except FhirError as err:
        assert err.status in (400, 422) and err.issues
        return
    assert bundle["type"] == "transaction"
    (encounter,) = resources(bundle, "Encounter")
    assert encounter["id"] == encounter_id(RSUD_VISITS, str(reg["no_rawat"]).strip())


def test_an_impossible_time_of_registration_leaves_the_date():
    visit = edited(reg_periksa={"jam_reg": "25:61:00"})
    (encounter,) = resources(mapped(visit), "Encounter")
    assert encounter["period"] == {"start": "2024-03-05"}
    with pytest.raises(FhirError) as err:
        mapped(edited(reg_periksa={"tgl_registrasi": "2024-02-30"}))
    assert err.value.issues[0].expression == ("reg_periksa.tgl_registrasi",)
