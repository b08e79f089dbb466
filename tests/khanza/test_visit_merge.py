"""One visit from both of the RSUD's channels: the HL7 v2 feed (PV1-19 = ``no_rawat``) and the
Khanza database. The two write the same Encounter (one id), and merge into it rather than
replacing each other (fhirhub.ingest.visits, docs/khanza.md "One visit, two channels"): whatever
the order of arrival, the stored Encounter is the same; its status never goes back; a message
that adds nothing makes no new version."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_factories import load_reference
from sqlalchemy import Engine, text

from fhirhub.config import Settings
from fhirhub.ingest.service import IngestService
from fhirhub.ingest.visits import VISIT_CHANNEL, encounter_id, merge_encounter
from fhirhub.model.json import loads
from fhirhub.storage.engine import make_engine

SYSTEM = "http://sys-ids.kemkes.go.id/encounter/10085099"
NO_RAWAT = "2024/01/05/000001"
ENCOUNTER = encounter_id(SYSTEM, NO_RAWAT)
PID = (
    "PID|1||000123^^^RSUD01^MR~7472011505800001^^^DUKCAPIL^NNIDN||WA ODE\\T\\SITI^NURHAYATI"
    "^^^NY||19800515|F|||Jl. Anoa No. 5^^Baubau^Sulawesi Tenggara^^ID^H^Wale||081234567890"
)
PV1 = (
    "PV1|1|I|RANAP^201^2^RSUD01||||D001^DOKTER^ANDI^^^dr.||||||||||||" + NO_RAWAT
    + "|||||||||||||||||01||||||||20240105083000|{discharged}"
)  # fmt: skip
DG1 = [
    "DG1|1||I10^Hipertensi esensial^I10||20240105083000|A",
    "DG1|2||E11.9^^I10||20240105083000|F",
]


def hl7(trigger: str, control: str, discharged: str = "") -> bytes:
    structure = "ADT_A03" if trigger == "A03" else "ADT_A01"
    segments = [
        f"MSH|^~\\&|KHANZA|RSUD01|FHIRHUB|DINKES7472|20240105083000||ADT^{trigger}^{structure}"
        f"|{control}|P|2.5",
        f"EVN|{trigger}|20240105083000",
        PID,
        PV1.format(discharged=discharged),
        *DG1,
    ]
    return "\r".join(segments).encode()


A01 = hl7("A01", "C-A01")
A03 = hl7("A03", "C-A03", discharged="20240108100000")

KHANZA: dict[str, Any] = {
    "reg_periksa": {
        "no_rawat": NO_RAWAT,
        "tgl_registrasi": "2024-01-05",
        "jam_reg": "08:25:00",  # the counter registered the patient before the ward admitted
        "no_rkm_medis": "000123",
        "kd_poli": "RANAP",
        "stts": "Sudah",
        "status_lanjut": "Ranap",
        "kd_pj": "UMU",
    },
    "pasien": {
        "no_rkm_medis": "000123",
        "nm_pasien": "WA ODE SITI NURHAYATI",
        "no_ktp": "7472011505800001",
        "jk": "P",
        "tgl_lahir": "1980-05-15",
        "kd_pj": "UMU",
    },
    "diagnosa_pasien": [
        {"no_rawat": NO_RAWAT, "kd_penyakit": "I10", "status": "Ranap", "prioritas": 1},
        {"no_rawat": NO_RAWAT, "kd_penyakit": "E11.9", "status": "Ranap", "prioritas": 2},
    ],
    "penyakit": [{"kd_penyakit": "I10", "nm_penyakit": "Hipertensi esensial"}],
    "prosedur_pasien": [],
    "icd9": [],
    "poliklinik": {"kd_poli": "RANAP", "nm_poli": "Rawat Inap"},
}


def khanza(**reg: Any) -> bytes:
    visit = copy.deepcopy(KHANZA)
    visit["reg_periksa"].update(reg)
    return orjson.dumps(visit, option=orjson.OPT_SORT_KEYS)


MESSAGES = {"A01": ("rsud", A01), "A03": ("rsud", A03), "K": ("khanza", khanza())}


@pytest.fixture
def second(
    tmp_path: Path, sqlite_template: Path, settings: Settings
) -> Iterator[tuple[IngestService, Engine]]:
    """Another fhirhub database (SQLite), for the other order of arrival."""
    path = tmp_path / "second.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    load_reference(engine)
    svc = IngestService.from_settings(engine, settings.model_copy(update={"database_url": url}))
    yield svc, engine
    svc.dispatcher.close()
    engine.dispose()


def send(service: IngestService, *names: str) -> None:
    for name in names:
        source, payload = MESSAGES[name]
        row = service.submit_and_process(
            source, payload, sender="RSUD01", content_type=_content_type(source)
        )
        assert row.status == "processed", row.outcome


def _content_type(source: str) -> str:
    return "application/hl7-v2" if source == "rsud" else "application/json"


def stored(engine: Engine) -> tuple[dict[str, Any], int]:
    """The visit's Encounter as stored (without its version bookkeeping), and its version."""
    with engine.connect() as conn:
        content, version = conn.execute(
            text(
                "SELECT content, version FROM resources WHERE res_type = 'Encounter' "
                "AND res_id = :i"
            ),
            {"i": ENCOUNTER},
        ).one()
    body = content if isinstance(content, dict) else loads(content)
    meta = {k: v for k, v in body.pop("meta").items() if k not in ("versionId", "lastUpdated")}
    body["subject"] = "the patient"  # server-assigned ids differ between databases
    return {**body, "meta": meta}, int(version)


# The HL7 feed's messages come in their own order; Khanza's row is read before, between or
# after them.
def conditions(engine: Engine) -> list[dict[str, Any]]:
    """The visit's Conditions as stored, without version bookkeeping and patient ids."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT res_id, content FROM resources WHERE res_type = 'Condition' ORDER BY res_id"
            )
        ).all()
    out = []
    for _, content in rows:
        body = content if isinstance(content, dict) else loads(content)
        body["meta"] = {
            k: v for k, v in body["meta"].items() if k not in ("versionId", "lastUpdated")
        }
        body["subject"] = "the patient"
        out.append(body)
    return out


ORDERS = [
    (("A01", "A03", "K"), ("K", "A01", "A03")),
    (("A01", "K", "A03"), ("K", "A01", "A03")),
    (("A01", "A03", "K"), ("A01", "K", "A03")),
]


@pytest.mark.parametrize(
    ("order", "other_order"), ORDERS, ids=["-".join(a) + "_vs_" + "-".join(b) for a, b in ORDERS]
)
def test_both_orders_end_in_the_same_encounter(
    order: tuple[str, ...],
    other_order: tuple[str, ...],
    service: IngestService,
    engine: Engine,
    second: tuple[IngestService, Engine],
) -> None:
    send(service, *order)
    other_service, other_engine = second
    send(other_service, *other_order)  # in another database
    mine, version = stored(engine)
    theirs, _ = stored(other_engine)
    assert mine == theirs
    assert conditions(engine) == conditions(other_engine)  # the diagnoses merged alike
    assert version == 3  # each message changed something: one version each
    assert mine["status"] == "finished"
    assert mine["period"] == {
        "start": "2024-01-05T08:25:00+08:00",
        "end": "2024-01-08T10:00:00+08:00",
    }
    assert mine["serviceType"] == {"text": "Rawat Inap"}  # said by Khanza only
    assert mine["participant"]  # the doctor, said by the HL7 feed only
    assert [d["rank"] for d in mine["diagnosis"]] == [1, 2]  # each Condition once
    assert [h["status"] for h in mine["statusHistory"]] == ["arrived", "in-progress", "finished"]
    assert {t["code"] for t in mine["meta"]["tag"] if t["system"] == VISIT_CHANNEL} == {
        "khanza",
        "rsud",
    }
    assert mine["meta"]["source"].endswith("/source/rsud/RSUD01")  # the preferred channel's


def test_the_status_never_goes_back_and_nothing_new_makes_no_version(
    service: IngestService, engine: Engine
) -> None:
    send(service, "A01", "A03", "K")
    before, version = stored(engine)
    # Khanza read again while the row still said "Dirawat" (in the ward): finished stays.
    row = service.submit_and_process(
        "khanza", khanza(stts="Dirawat"), sender="RSUD01", content_type="application/json"
    )
    assert row.status == "processed", row.outcome
    after, version_after = stored(engine)
    assert after["status"] == "finished"
    assert (after, version_after) == (before, version)  # nothing new: no new version
    # The HL7 discharge sent again under a new control id: nothing new either.
    resent = A03.replace(b"|C-A03|", b"|C-A03-again|")
    row = service.submit_and_process("rsud", resent, content_type="application/hl7-v2")
    assert row.status == "processed", row.outcome
    assert stored(engine) == (before, version)


def test_one_channel_alone_still_replaces_its_own_description(
    service: IngestService, engine: Engine
) -> None:
    """Without a second channel nothing is merged: a cancelled discharge (A13) after a
    discharge puts the visit back in progress, as the feed says."""
    send(service, "A01", "A03")
    a13 = hl7("A13", "C-A13")
    row = service.submit_and_process("rsud", a13, content_type="application/hl7-v2")
    assert row.status == "processed", row.outcome
    body, _ = stored(engine)
    assert body["status"] == "in-progress"
    assert "tag" not in body["meta"]


# --- the merge itself, for any two descriptions ------------------------------------------------

_statuses = st.sampled_from(
    ["planned", "arrived", "in-progress", "finished", "cancelled", "entered-in-error"]
)
_times = st.sampled_from(
    [
        "2024-01-05",
        "2024-01-05T08:25:00+08:00",
        "2024-01-05T08:30:00+08:00",
        "2024-01-08T10:00:00+08:00",
    ]
)
_periods = st.fixed_dictionaries({}, optional={"start": _times, "end": _times})
_places = st.sampled_from(["RANAP / 201", "Rawat Inap", "IGD"])
_encounters = st.fixed_dictionaries(
    {"resourceType": st.just("Encounter"), "id": st.just(ENCOUNTER), "status": _statuses},
    optional={
        "period": _periods,
        "class": st.sampled_from([{"code": "IMP"}, {"code": "AMB"}]),
        "serviceType": st.just({"text": "Rawat Inap"}),
        "statusHistory": st.lists(
            st.fixed_dictionaries({"status": _statuses, "period": _periods}), max_size=3
        ),
        "location": st.lists(
            st.fixed_dictionaries(
                {
                    "location": _places.map(lambda d: {"display": d}),
                    "status": st.sampled_from(["active", "completed"]),
                },
                optional={"period": _periods},
            ),
            max_size=3,
        ),
        "diagnosis": st.lists(
            st.fixed_dictionaries(
                {
                    "condition": st.sampled_from(["Condition/a", "Condition/b"]).map(
                        lambda r: {"reference": r}
                    ),
                    "rank": st.integers(1, 3),
                }
            ),
            max_size=2,
        ),
    },
)
_ORDER = ["planned", "arrived", "in-progress", "finished", "cancelled", "entered-in-error"]


@settings(max_examples=200, deadline=None)
@given(preferred=_encounters, other=_encounters)
def test_any_merge_keeps_the_later_status_and_merging_again_changes_nothing(
    preferred: dict[str, Any], other: dict[str, Any]
) -> None:
    merged = merge_encounter(preferred, other)
    assert _ORDER.index(merged["status"]) == max(
        _ORDER.index(preferred["status"]), _ORDER.index(other["status"])
    )
    assert merge_encounter(merged, other) == merged  # the same message again: nothing new
    assert merge_encounter(preferred, merged) == merged  # the preferred one again: nothing new
    for key in ("serviceType", "class"):  # the preferred channel's, else the other's
        assert merged.get(key) == (preferred.get(key) or other.get(key))
