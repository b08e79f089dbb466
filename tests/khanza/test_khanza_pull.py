"""Pulling the synthetic city's RSUD visits from a real SIMRS Khanza database (MariaDB): every
visit stored once with its patient, diagnoses, procedures and payer; later visits by a later
pull; a pull stopped half-way resumes; nothing is ever imported twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from khanza_city import KhanzaRows, execute, insert
from sqlalchemy import Engine, text

from adapters.rsud.khanza_db import read_only_engine
from fhirhub.ingest import pull as pulls
from fhirhub.ingest.service import IngestService
from fhirhub.ingest.visits import child_id, encounter_id
from fhirhub.model.systems import ADMINISTRATIVE_CODE, BPJS_CARD, ICD10, NIK
from fhirhub.storage.pull_repository import PullRepository

RSUD_VISITS = "http://sys-ids.kemkes.go.id/encounter/10085099"
RSUD_MRN = "https://fhirhub.baubaukota.go.id/sid/mrn/rsud01"


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT res_type, COUNT(*) FROM resources WHERE NOT deleted GROUP BY res_type")
        ).all()
    return {t: n for t, n in rows}


def versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM resource_versions")).scalar_one())


def inbox(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status FROM inbox_messages WHERE source = 'khanza'")).all()
    return Counter(s for (s,) in rows)


def bodies(engine: Engine, res_type: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT content FROM resources WHERE res_type = :t AND NOT deleted"),
            {"t": res_type},
        ).all()
    return [c if isinstance(c, dict) else orjson.loads(c) for (c,) in rows]


def expected(city: KhanzaRows) -> dict[str, int]:
    bpjs = {
        p["no_rkm_medis"] for p in city.tables["pasien"] if p["no_peserta"] and p["kd_pj"] == "BPJ"
    }
    with_bpjs_visit = {
        r["no_rkm_medis"]
        for r in city.tables["reg_periksa"]
        if r["kd_pj"] == "BPJ" and r["no_rkm_medis"] in bpjs
    }
    return {
        "Patient": len({r["no_rkm_medis"] for r in city.tables["reg_periksa"]}),
        "Encounter": len(city.tables["reg_periksa"]),
        "Condition": len(city.tables["diagnosa_pasien"]),
        "Procedure": len(city.tables["prosedur_pasien"]),
        "Coverage": len(with_bpjs_visit),
    }


def stored(engine: Engine) -> dict[str, int]:
    found = counts(engine)
    return {
        t: found.get(t, 0) for t in ("Patient", "Encounter", "Condition", "Procedure", "Coverage")
    }


def test_a_pull_stores_every_visit_with_its_patient_diagnoses_procedures_and_payer(
    service: IngestService, engine: Engine, khanza_url: str, city: KhanzaRows
):
    insert(khanza_url, city)
    totals: list[int] = []
    report = pulls.pull(service, "khanza", khanza_url, batch=20, on_total=totals.append)
    n = len(city.visits)
    assert totals == [n]
    assert (report.read, report.kept, report.duplicates) == (n, n, 0)
    assert report.statuses == {"processed": n}
    assert report.position == city.visits[-1]["no_rawat"]
    assert stored(engine) == expected(city)
    assert expected(city)["Procedure"] > 0 and expected(city)["Coverage"] > 0

    visit = next(v for v in city.visits if v["status_lanjut"] == "Ranap" and v["kd_poli"] == "OBG")
    (enc,) = [
        e for e in bodies(engine, "Encounter") if e["identifier"][0]["value"] == visit["no_rawat"]
    ]
    assert enc["identifier"] == [{"system": RSUD_VISITS, "value": visit["no_rawat"]}]
    assert enc["id"] == encounter_id(RSUD_VISITS, visit["no_rawat"])
    assert enc["class"]["code"] == "IMP"
    assert enc["period"]["start"] == f"{visit['tgl_registrasi']}T{visit['jam_reg']}+08:00"
    assert enc["serviceProvider"] == {"reference": "Organization/org-rsud01"}
    assert enc["meta"]["source"].endswith("/source/khanza/RSUD01")
    dx = [d for d in city.tables["diagnosa_pasien"] if d["no_rawat"] == visit["no_rawat"]]
    assert len(enc["diagnosis"]) == len(dx)
    conditions = [
        c
        for c in bodies(engine, "Condition")
        if c["encounter"]["reference"] == f"Encounter/{enc['id']}"
    ]
    assert sorted(c["code"]["coding"][0]["code"] for c in conditions) == sorted(
        d["kd_penyakit"] for d in dx
    )
    assert all(c["code"]["coding"][0]["system"] == ICD10 for c in conditions)
    procedures = [
        p
        for p in bodies(engine, "Procedure")
        if p["encounter"]["reference"] == f"Encounter/{enc['id']}"
    ]
    by_order = {p["id"]: p["code"]["coding"][0] for p in procedures}
    system = "http://hl7.org/fhir/sid/icd-9-cm"
    assert by_order == {
        child_id(RSUD_VISITS, visit["no_rawat"], "Procedure", 0): {
            "system": system,
            "code": "89.03",
            "display": "Interview and evaluation, described as comprehensive",
        },
        child_id(RSUD_VISITS, visit["no_rawat"], "Procedure", 1): {
            "system": system,
            "code": "73.59",
            "display": "Other manually assisted delivery",
        },
    }

    pasien = {p["no_rkm_medis"]: p for p in city.tables["pasien"]}
    patients = {
        next(i["value"] for i in p["identifier"] if i["system"] == RSUD_MRN): p
        for p in bodies(engine, "Patient")
        if any(i["system"] == RSUD_MRN for i in p["identifier"])
    }
    assert len(patients) == expected(city)["Patient"]
    kelurahan = {int(k["kd_kel"]): k["nm_kel"] for k in city.tables["kelurahan"]}
    for mrn, patient in patients.items():
        row = pasien[mrn]
        ids = {i["system"]: i["value"] for i in patient["identifier"]}
        assert ids.get(NIK) == (row["no_ktp"] or None)
        assert ids.get(BPJS_CARD) == (row["no_peserta"] or None)
        assert patient["gender"] == {"L": "male", "P": "female"}[row["jk"]]
        assert patient["birthDate"] == row["tgl_lahir"]
        (code,) = [e for e in patient["address"][0]["extension"] if e["url"] == ADMINISTRATIVE_CODE]
        village = next(x["valueCode"] for x in code["extension"] if x["url"] == "village")
        assert village.startswith("7472")
        assert patient["address"][0]["line"] == [row["alamat"]]
        assert kelurahan[int(row["kd_kel"])]  # the name the code was found from
    coverage = bodies(engine, "Coverage")[0]
    assert coverage["identifier"][0]["system"] == BPJS_CARD
    assert coverage["beneficiary"]["reference"].startswith("Patient/")


def test_a_second_pull_imports_nothing_and_changes_nothing(
    service: IngestService, engine: Engine, khanza_url: str, city: KhanzaRows
):
    insert(khanza_url, city)
    pulls.pull(service, "khanza", khanza_url)
    before, history, messages = stored(engine), versions(engine), inbox(engine)
    again = pulls.pull(service, "khanza", khanza_url)
    assert (again.read, again.kept) == (0, 0)
    # Reading the whole window again (a lookback past the first visit, or --since): every
    # visit is read, none is new, nothing is stored again.
    n = len(city.visits)
    reread = pulls.pull(service, "khanza", khanza_url, lookback_days=10_000)
    assert (reread.read, reread.kept, reread.duplicates) == (n, 0, n)
    first_day = city.visits[0]["tgl_registrasi"]
    from datetime import date

    since = pulls.pull(service, "khanza", khanza_url, since=date.fromisoformat(first_day))
    assert (since.read, since.kept) == (n, 0)
    assert stored(engine) == before
    assert versions(engine) == history
    assert inbox(engine) == messages == Counter({"processed": n})


def test_a_later_pull_takes_the_visits_registered_since(
    service: IngestService, engine: Engine, khanza_url: str, city: KhanzaRows
):
    visits = [v["no_rawat"] for v in city.visits]
    first, rest = set(visits[: len(visits) // 2]), set(visits[len(visits) // 2 :])
    insert(khanza_url, city.of_visits(first))
    one = pulls.pull(service, "khanza", khanza_url)
    assert (one.read, one.kept) == (len(first), len(first))
    assert one.position == max(first)
    insert(khanza_url, city.of_visits(rest).visit_part())
    two = pulls.pull(service, "khanza", khanza_url)
    assert (two.read, two.kept) == (len(rest), len(rest))
    assert two.position == max(rest)
    assert stored(engine) == expected(city)
    watermark = pulls.watermark(service, "khanza", khanza_url)
    assert watermark is not None and watermark.rows == len(visits)
    assert "@" in watermark.location and "127.0.0.1" in watermark.location


def test_a_diagnosis_entered_after_the_pull_updates_the_same_visit(
    service: IngestService, engine: Engine, khanza_url: str, city: KhanzaRows
):
    insert(khanza_url, city)
    pulls.pull(service, "khanza", khanza_url)
    before = stored(engine)
    last = city.visits[-1]
    code = next(c["kd_penyakit"] for c in city.tables["penyakit"])
    if any(
        d["no_rawat"] == last["no_rawat"] and d["kd_penyakit"] == code
        for d in city.tables["diagnosa_pasien"]
    ):
        code = [c["kd_penyakit"] for c in city.tables["penyakit"]][1]
    execute(
        khanza_url,
        "INSERT INTO diagnosa_pasien VALUES (:r, :c, :s, 9, 'Baru')",
        r=last["no_rawat"],
        c=code,
        s=last["status_lanjut"],
    )
    without_lookback = pulls.pull(service, "khanza", khanza_url)
    assert without_lookback.read == 0  # past the watermark: nothing
    report = pulls.pull(service, "khanza", khanza_url, lookback_days=7)
    assert report.kept == 1 and report.statuses == {"processed": 1}
    after = stored(engine)
    assert after == {**before, "Condition": before["Condition"] + 1}
    (enc,) = [
        e for e in bodies(engine, "Encounter") if e["identifier"][0]["value"] == last["no_rawat"]
    ]
    assert enc["meta"]["versionId"] == "2"
    assert len(enc["diagnosis"]) == 1 + sum(
        d["no_rawat"] == last["no_rawat"] for d in city.tables["diagnosa_pasien"]
    )


class Stop(Exception):
    pass


def test_a_pull_stopped_after_a_batch_resumes_after_it(
    service: IngestService, engine: Engine, khanza_url: str, city: KhanzaRows
):
    insert(khanza_url, city)

    def stop(_n: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        pulls.pull(service, "khanza", khanza_url, batch=10, on_batch=stop)
    mark = pulls.watermark(service, "khanza", khanza_url)
    assert mark is not None and mark.position == city.visits[9]["no_rawat"]
    assert sum(inbox(engine).values()) == 10
    rest = pulls.pull(service, "khanza", khanza_url, batch=10)
    assert (rest.read, rest.kept) == (len(city.visits) - 10, len(city.visits) - 10)
    assert stored(engine) == expected(city)
    assert inbox(engine) == Counter({"processed": len(city.visits)})


def test_a_pull_killed_between_keeping_and_the_watermark_stores_nothing_twice(
    service: IngestService,
    engine: Engine,
    khanza_url: str,
    city: KhanzaRows,
    monkeypatch: pytest.MonkeyPatch,
):
    insert(khanza_url, city)
    original = PullRepository.advance
    calls = {"n": 0}

    def dies_on_the_second(self: PullRepository, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Stop  # the batch is in the inbox; the watermark is not moved
        return original(self, *args)

    monkeypatch.setattr(PullRepository, "advance", dies_on_the_second)
    with pytest.raises(Stop):
        pulls.pull(service, "khanza", khanza_url, batch=10)
    monkeypatch.setattr(PullRepository, "advance", original)
    assert sum(inbox(engine).values()) == 20  # two batches kept, ten of them not handed out
    assert inbox(engine)["received"] == 10
    rest = pulls.pull(service, "khanza", khanza_url, batch=10)
    assert rest.duplicates == 10 and rest.kept == len(city.visits) - 20
    assert inbox(engine) == Counter({"processed": len(city.visits)})
    assert stored(engine) == expected(city)


def test_the_puller_cannot_write_to_khanza(khanza_url: str, city: KhanzaRows):
    insert(khanza_url, city)
    engine = read_only_engine(khanza_url)
    try:
        with engine.connect() as conn, pytest.raises(Exception, match="READ ONLY"):
            conn.execute(text("DELETE FROM diagnosa_pasien"))
    finally:
        engine.dispose()


def test_an_unreachable_khanza_is_one_error_and_leaves_the_watermark(
    service: IngestService, khanza_url: str
):
    bad = khanza_url.rsplit("/", 1)[0] + "/fhirhub_khanza_test_missing_db"
    with pytest.raises(pulls.SourceUnavailable, match="khanza: OperationalError"):
        pulls.pull(service, "khanza", bad)
    assert pulls.watermark(service, "khanza", bad) is None


def test_a_batch_is_kept_whole_or_not_at_all(service: IngestService, engine: Engine):
    from fhirhub.errors import FhirError

    with pytest.raises(FhirError):
        service.pipeline.receive_many(
            "khanza", [(b'{"a": 1}', "RSUD01"), (b'{"a": "\\u0000"}', "RSUD01")]
        )
    assert sum(inbox(engine).values()) == 0
    receipts = service.pipeline.receive_many(
        "khanza", [(b'{"a": 1}', "RSUD01"), (b'{"a": 1}', "RSUD01"), (b'{"a": 2}', None)]
    )
    assert [r.duplicate for r in receipts] == [False, True, False]
    assert receipts[0].id == receipts[1].id and receipts[1].status == "received"
    assert inbox(engine) == Counter({"received": 2})


def test_text_with_nul_characters_is_read_without_them():
    from adapters.rsud.khanza_db import payload_of, plain

    assert plain("JL. ANOA\x00 NO. 5") == "JL. ANOA NO. 5"
    assert b"\\u0000" not in payload_of({"pasien": {"alamat": plain("A\x00B")}})
