"""Acceptance (issue 5): 1,000 Puskesmas bundles of which 5 % are invalid in different ways.

Every valid one is stored; every invalid one is rejected with its OperationOutcome and kept in
the inbox; none is lost. After the mapping is fixed (a missing local code added to the
Puskesmas's table), replaying the rejected messages stores the ones it fixed.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson
import yaml
from ingest_factories import city, facility_of, per_patient
from sqlalchemy import Engine, text

from fhirhub.ingest.service import IngestService
from fhirhub.search import find_matches
from fhirhub.storage.repository import ResourceRepository

TOTAL = 1000
NEW_CODE = "ISPA-BERAT"  # a local diagnosis code PKM10 started to use before its map knew it


def _first(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


def unknown_local_code(b: dict[str, Any]) -> bytes:
    _first(b, "Condition")["code"]["coding"][0]["code"] = NEW_CODE
    return orjson.dumps(b)


def truncated(b: dict[str, Any]) -> bytes:
    raw = orjson.dumps(b)
    return raw[: len(raw) // 2]


def bad_birth_date(b: dict[str, Any]) -> bytes:
    patient = _first(b, "Patient")
    y, m, d = patient["birthDate"].split("-")
    patient["birthDate"] = f"{d}-{m}-{y}"  # the clinic's display format, not a FHIR date
    return orjson.dumps(b)


def bad_record_number(b: dict[str, Any]) -> bytes:
    for ident in _first(b, "Patient")["identifier"]:
        if "/sid/mrn/" in ident["system"]:
            ident["value"] = "RM 12/A"
    return orjson.dumps(b)


def dangling_reference(b: dict[str, Any]) -> bytes:
    _first(b, "Encounter")["subject"]["reference"] = "urn:uuid:00000000-0000-4000-8000-00000000dead"
    return orjson.dumps(b)


def not_a_transaction(b: dict[str, Any]) -> bytes:
    b["type"] = "collection"
    return orjson.dumps(b)


BREAKERS = [  # (how, how many, expected issue code)
    (unknown_local_code, 10, "code-invalid"),
    (truncated, 8, "structure"),
    (bad_birth_date, 8, "value"),
    (bad_record_number, 8, "value"),
    (dangling_reference, 8, "not-found"),
    (not_a_transaction, 8, "invalid"),
]


def _has_visit(b: dict[str, Any]) -> bool:
    return any(e["resource"]["resourceType"] == "Encounter" for e in b["entry"])


def messages() -> tuple[list[bytes], dict[int, tuple[str, str | None]]]:
    """1,000 payloads and, by position, what is wrong with the broken ones."""
    _, bundles = city()
    small = [s for b in bundles for s in per_patient(b, encounters=1)]
    with_condition = {
        i
        for i, s in enumerate(small)
        if facility_of(s) == "PKM10"
        and any(e["resource"]["resourceType"] == "Condition" for e in s["entry"])
        and "lokal" in orjson.dumps(_first(s, "Condition")["code"]).decode()
    }
    rng = random.Random(5)
    chosen = rng.sample(range(len(small)), TOTAL)
    broken: dict[int, tuple[str, str | None]] = {}
    local = [i for i in chosen if i in with_condition]
    others = [i for i in chosen if i not in with_condition and _has_visit(small[i])]
    payloads: dict[int, bytes] = {}
    for breaker, n, code in BREAKERS:
        pool = local if breaker is unknown_local_code else others
        for i in pool[:n]:
            payloads[i] = breaker(small[i])
            broken[i] = (breaker.__name__, code)
        del pool[:n]
    out: list[bytes] = []
    what: dict[int, tuple[str, str | None]] = {}
    for k, i in enumerate(chosen):
        out.append(payloads.get(i) or orjson.dumps(small[i]))
        if i in broken:
            what[k] = broken[i]
    return out, what


def test_a_thousand_bundles_none_lost_and_the_fixed_ones_replayed(
    service: IngestService, engine: Engine, mappings_dir
):
    payloads, broken = messages()
    assert len(payloads) == TOTAL and len(broken) == TOTAL // 20
    ids = [service.submit("puskesmas", p).id for p in payloads]
    assert len(set(ids)) == TOTAL

    rows = {r.id: r for r in service.messages(limit=2 * TOTAL)}
    assert len(rows) == TOTAL  # none lost
    statuses = Counter(r.status for r in rows.values())
    assert statuses == {"processed": TOTAL - len(broken), "rejected": len(broken)}
    for k, message_id in enumerate(ids):
        row = rows[message_id]
        if k not in broken:
            assert row.status == "processed", (k, row.outcome)
            continue
        how, code = broken[k]
        assert row.status == "rejected", how
        outcome = orjson.loads(row.outcome)
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"], how
        if code:
            assert outcome["issue"][0]["code"] == code, (how, outcome)
        assert service.payload(message_id) == payloads[k]  # kept as received
    with engine.connect() as conn:
        patients = conn.execute(
            text("SELECT COUNT(*) FROM resources WHERE res_type = 'Patient'")
        ).scalar_one()
    assert patients == TOTAL - len(broken)

    # Fix the mapping: PKM10's table learns the new local code. Replay every rejected message.
    table = mappings_dir / "puskesmas" / "pkm10.yaml"
    mapping = yaml.safe_load(table.read_text())
    mapping["local_codes"] = [
        {
            "system": "https://fhirhub.baubaukota.go.id/CodeSystem/diagnosa-lokal",
            "code": NEW_CODE,
            "target_system": "http://hl7.org/fhir/sid/icd-10",
            "target_code": "J06.9",
        }
    ]
    table.write_text(yaml.safe_dump(mapping))
    rejected = [r.id for r in service.messages(status="rejected", limit=TOTAL)]
    service.replay(rejected)
    fixed = {ids[k] for k, (how, _) in broken.items() if how == "unknown_local_code"}
    after = {r.id: r.status for r in service.messages(limit=2 * TOTAL)}
    assert {i for i in rejected if after[i] == "processed"} == fixed
    assert sum(1 for s in after.values() if s == "rejected") == len(broken) - len(fixed)
    local = "https://fhirhub.baubaukota.go.id/CodeSystem/diagnosa-lokal"
    with engine.connect() as conn:
        patients = conn.execute(
            text("SELECT COUNT(*) FROM resources WHERE res_type = 'Patient'")
        ).scalar_one()
        # the replayed diagnoses: stored with the translation first, the local code kept
        replayed = find_matches(conn, "Condition", f"code={local}|{NEW_CODE}")
        repo = ResourceRepository(conn)
        codings = []
        for _pk, res_id in replayed:
            stored = repo.current("Condition", res_id)
            assert stored is not None and stored.content is not None
            codings.append(orjson.loads(stored.content)["code"]["coding"])
        j069 = find_matches(conn, "Condition", "code=http://hl7.org/fhir/sid/icd-10|J06.9")
    assert patients == TOTAL - len(broken) + len(fixed)
    assert len(codings) == len(fixed) > 0  # one changed diagnosis per fixed message
    for coding in codings:
        assert [(c["system"], c["code"]) for c in coding] == [
            ("http://hl7.org/fhir/sid/icd-10", "J06.9"),
            (local, NEW_CODE),
        ]
    assert {res_id for _, res_id in replayed} <= {res_id for _, res_id in j069}
