"""HL7 v2 posted over HTTP (``POST /ingest/rsud``), the inbox's view of a rejected message, and
the synthetic city's RSUD feed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mllp_client import message

from fhirhub.errors import FhirError
from fhirhub.ingest import Message
from fhirhub.ingest.adapters import Context
from fhirhub.ingest.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("ctype", ["application/hl7-v2", "x-application/hl7-v2+er7"])
def test_post_hl7_synchronously(client: TestClient, ctype: str) -> None:
    r = client.post(
        "/ingest/rsud?mode=sync", content=message("H1"), headers={"content-type": ctype}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processed"
    again = message("H1").replace(b"20240105083000||ADT", b"20240105090000||ADT")
    r2 = client.post("/ingest/rsud", content=again, headers={"content-type": ctype})
    assert r2.status_code == 202
    assert r2.json()["duplicate"] is True  # sending facility + MSH-10


def test_a_rejected_message_shows_its_err(client: TestClient) -> None:
    r = client.post(
        "/ingest/rsud",
        content=message("H2", mrn=""),
        headers={"content-type": "application/hl7-v2"},
    )
    url = r.json()["statusUrl"]
    deadline = time.monotonic() + 30
    while (body := client.get(url).json())["status"] != "rejected":
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["hl7"]["ack"] == "AE"
    assert body["hl7"]["err"][0].startswith("ERR||PID^1^3|101^Required field missing^HL70357|E")


def test_the_synthetic_citys_rsud_feed_maps_without_rejections(tmp_path: Path) -> None:
    from fhirhub.synth.generate import DEFAULT_TODAY, build
    from fhirhub.synth.rsud import task_rsud

    task_rsud(build(300, 5, DEFAULT_TODAY), tmp_path)
    messages = [
        m
        for f in sorted((tmp_path / "rsud" / "hl7v2").glob("*.hl7"))
        for m in f.read_bytes().split(b"\n")
        if m.strip()
    ]
    assert messages
    pipeline = Pipeline(None, Context(ROOT / "mappings", ROOT / "terminology"))  # type: ignore[arg-type]
    problems = []
    for raw in messages[:150]:
        try:
            bundle = pipeline.canonical(Message(0, "rsud", None, None, 0, raw)).bundle
        except FhirError as err:
            problems.append(err.summary)
            continue
        assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
    assert problems == []
