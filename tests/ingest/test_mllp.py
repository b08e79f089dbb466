"""The MLLP listener over a real socket: acknowledgements, duplicates, framing, concurrency."""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path

import orjson
from mllp_client import Client, message, oru, running
from sqlalchemy import Engine, text

from fhirhub.ingest import hl7ack, metrics
from fhirhub.ingest.mllp import Frame, FrameReader
from fhirhub.ingest.service import IngestService

GOLDEN = Path(__file__).parent / "golden_rsud"


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT res_type, COUNT(*) FROM resources GROUP BY res_type")
        ).all()
    return {t: n for t, n in rows}


def inbox(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                text("SELECT id, status FROM inbox_messages WHERE source = 'rsud' ORDER BY id")
            ).all()
        ]


def test_every_golden_message_is_stored_and_acknowledged_aa(
    service: IngestService, engine: Engine
) -> None:
    cases = sorted(p for p in GOLDEN.glob("*.hl7") if "a40" not in p.stem)
    with running(service.pipeline) as (_, port):
        client = Client(port)
        for path in cases:
            payload = path.read_bytes()
            ack = client.exchange(payload)
            assert ack.code == "AA", (path.stem, ack.raw)
            header = hl7ack.read_header(payload)
            assert header is not None
            assert ack.control_id == header.control_id
        client.close()
    assert [s for _, s in inbox(engine)] == ["processed"] * len(cases)
    assert counts(engine)["Patient"] == 2  # the golden messages name two record numbers


def test_many_messages_on_one_connection_answered_in_order(
    service: IngestService, engine: Engine
) -> None:
    with running(service.pipeline) as (_, port):
        client = Client(port)
        for i in range(5):  # sent at once, in one write
            client.send_raw(b"\x0b" + message(f"C{i}", visit=f"V{i}") + b"\x1c\r")
        acks = [client.receive() for _ in range(5)]
        client.close()
    assert [a.control_id for a in acks] == [f"C{i}" for i in range(5)]
    assert {a.code for a in acks} == {"AA"}
    assert counts(engine)["Encounter"] == 5
    assert counts(engine)["Patient"] == 1  # the same record number: one Patient


def test_a_resent_control_id_is_acknowledged_and_not_stored_twice(
    service: IngestService, engine: Engine
) -> None:
    first = message("DUP1")
    resent = first.replace(b"20240105083000||ADT", b"20240105083500||ADT")  # new MSH-7
    assert first != resent
    with running(service.pipeline) as (_, port):
        client = Client(port)
        assert client.exchange(first).code == "AA"
        before = counts(engine)
        assert client.exchange(resent).code == "AA"
        assert client.exchange(first).code == "AA"
        client.close()
    assert counts(engine) == before
    assert len(inbox(engine)) == 1


def test_the_same_control_id_from_another_facility_is_another_message(
    service: IngestService, engine: Engine, mappings_dir: Path
) -> None:
    facilities = mappings_dir / "rsud" / "facilities.yaml"
    facilities.write_text(
        facilities.read_text().replace(
            "sending_facility: [RSUD01,", "sending_facility: [RSUD01, LAB-RSUD,"
        )
    )
    with running(service.pipeline) as (_, port):
        client = Client(port)
        assert client.exchange(message("SAME")).code == "AA"
        assert client.exchange(message("SAME", facility="LAB-RSUD", visit="V9")).code == "AA"
        client.close()
    assert len(inbox(engine)) == 2


def test_unmappable_content_is_ae_with_the_field_and_kept_rejected(
    service: IngestService, engine: Engine
) -> None:
    bad = message("BAD1", mrn="")  # no record number in PID-3
    with running(service.pipeline) as (_, port):
        client = Client(port)
        ack = client.exchange(bad)
        client.close()
    assert ack.code == "AE"
    (err,) = ack.errors
    assert err[2] == "PID^1^3"  # ERR-2: segment, sequence, field
    assert err[3].startswith("101^")  # required field missing
    assert "record number" in err[8]
    (row,) = inbox(engine)
    assert row[1] == "rejected"
    outcome = service.get(row[0]).outcome
    assert outcome is not None
    assert orjson.loads(outcome)["issue"][0]["expression"] == ["PID[1]-3"]
    assert "Patient" not in counts(engine)


def test_old_versions_get_err_1(service: IngestService) -> None:
    with running(service.pipeline) as (_, port):
        client = Client(port)
        ack = client.exchange(message("OLD", mrn="", version="2.3"))
        client.close()
    assert ack.code == "AE"
    assert ack.errors[0][1].startswith("PID^1^3^101&")


def test_unsupported_type_and_version_are_ar(service: IngestService) -> None:
    unknown_type = message("T1").replace(b"ADT^A04", b"ADT^A99")
    unknown_version = message("T2", version="2.9")
    with running(service.pipeline) as (_, port):
        client = Client(port)
        type_ack = client.exchange(unknown_type)
        version_ack = client.exchange(unknown_version)
        client.close()
    assert type_ack.code == "AR"
    assert type_ack.errors[0][3].startswith("200^")
    assert version_ack.code == "AR"
    assert version_ack.errors[0][3].startswith("203^")


def test_garbage_half_frames_and_oversized_frames_never_stop_the_listener(
    service: IngestService, engine: Engine
) -> None:
    with running(service.pipeline, max_frame_bytes=4096, idle_seconds=1.0) as (_, port):
        client = Client(port)
        client.send_raw(b"garbage before any frame\r\n")
        assert client.exchange(b"this is not HL7").code == "AR"
        big = message("BIG") + b"\rZXX|" + b"x" * 10_000
        ack = client.exchange(big)
        assert ack.code == "AR"
        assert ack.control_id == "BIG"
        client.send_raw(b"\x0bMSH|^~\\&|half a frame")  # restarted by the next frame
        assert client.exchange(message("AFTER")).code == "AA"
        client.send_raw(b"\x0bMSH|^~\\&|half a frame, then the peer goes away")
        client.close()
        idle = Client(port)  # says nothing: closed after idle_seconds
        time.sleep(1.5)
        assert idle.sock.recv(10) == b""
        idle.close()
        again = Client(port)
        assert again.exchange(message("LAST", visit="V2")).code == "AA"
        again.close()
    assert [s for _, s in inbox(engine)] == ["processed", "processed"]


def test_fragmented_frames_are_put_together(service: IngestService) -> None:
    payload = b"\x0b" + message("FRAG") + b"\x1c\r"
    with running(service.pipeline) as (_, port):
        client = Client(port)
        for i in range(0, len(payload), 7):
            client.send_raw(payload[i : i + 7])
            time.sleep(0.001)
        assert client.receive().code == "AA"
        client.close()


def test_enhanced_mode_commit_then_application_ack(service: IngestService) -> None:
    always = message("E1", extra_msh="|||AL|AL")
    errors_only = message("E2", visit="V2", extra_msh="|||AL|ER")
    never = message("E3", visit="V3", extra_msh="|||NE|NE")
    with running(service.pipeline) as (_, port):
        client = Client(port)
        client.send(always)
        assert [client.receive().code, client.receive().code] == ["CA", "AA"]
        assert client.exchange(errors_only).code == "CA"  # success: no application ack
        client.send(never)
        client.send(message("E4", visit="V4"))  # original mode: the next answer is its AA
        ack = client.receive()
        assert (ack.code, ack.control_id) == ("AA", "E4")
        client.close()


def test_many_concurrent_connections(service: IngestService, engine: Engine) -> None:
    results: list[str] = []

    def send(k: int) -> None:
        client = Client(port)
        for j in range(3):
            ack = client.exchange(oru(f"K{k}-{j}", obx=2, mrn=f"{k:06d}"))
            results.append(ack.code)
        client.close()

    with running(service.pipeline) as (_, port):
        threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert results == ["AA"] * 24
    assert counts(engine)["Observation"] == 48
    assert counts(engine)["Patient"] == 8


def test_metrics_count_messages_by_type_and_ack(service: IngestService) -> None:
    def value(kind: str, ack: str) -> float:
        sample = metrics.HL7_MESSAGES.labels("rsud", kind, ack)
        return sample._value.get()  # type: ignore[attr-defined]

    before_aa, before_ar = value("ADT^A04", "AA"), value("unknown", "AR")
    with running(service.pipeline) as (_, port):
        client = Client(port)
        client.exchange(message("M1"))
        client.exchange(b"nonsense")
        client.close()
    assert value("ADT^A04", "AA") == before_aa + 1
    assert value("unknown", "AR") == before_ar + 1


def test_replay_after_a_mapping_fix(
    service: IngestService, engine: Engine, mappings_dir: Path
) -> None:
    unknown_local = oru("LOC1").replace(b"2345-7^Glucose^LN", b"KOLT^Kolesterol^L", 1)
    with running(service.pipeline) as (_, port):
        client = Client(port)
        ack = client.exchange(unknown_local)
        client.close()
    assert ack.code == "AE"
    assert ack.errors[0][2] == "OBX^1^3"
    assert ack.errors[0][3].startswith("103^")
    facilities = mappings_dir / "rsud" / "facilities.yaml"
    facilities.write_text(
        facilities.read_text()
        + "      - {system: https://fhirhub.baubaukota.go.id/CodeSystem/rsud01-lab, code: KOLT,"
        " target_system: http://loinc.org, target_code: 2093-3}\n"
    )
    ((message_id, status),) = inbox(engine)
    assert status == "rejected"
    service.replay([message_id])
    service.dispatcher.close()
    assert service.get(message_id).status == "processed"
    assert counts(engine)["Observation"] == 5


def test_frame_reader_keeps_the_head_of_an_oversized_frame() -> None:
    reader = FrameReader(max_bytes=10_000)
    frames = list(reader.feed(b"\x0b" + b"MSH|" + b"y" * 20_000 + b"\x1c\r\x0bok\x1c\r"))
    assert [f.oversized for f in frames] == [True, False]
    assert frames[0].payload.startswith(b"MSH|")
    assert len(frames[0].payload) <= 10_000
    assert frames[1] == Frame(b"ok")


def test_port_stays_open_after_a_peer_resets(service: IngestService) -> None:
    with running(service.pipeline) as (_, port):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.sendall(b"\x0b" + message("RST")[:30])
        s.close()  # RST
        client = Client(port)
        assert client.exchange(message("OK")).code == "AA"
        client.close()


def test_a_control_id_reused_for_other_content_is_stored_not_lost(
    service: IngestService, engine: Engine
) -> None:
    with running(service.pipeline) as (_, port):
        client = Client(port)
        assert client.exchange(message("REUSED", visit="V1")).code == "AA"
        crlf = message("REUSED", visit="V1").replace(b"\r", b"\r\n")  # a resend, other line ends
        assert client.exchange(crlf).code == "AA"
        assert client.exchange(message("REUSED", visit="V2")).code == "AA"  # another visit
        client.close()
    assert len(inbox(engine)) == 2
    assert counts(engine)["Encounter"] == 2


def test_a_5_mb_result_with_an_embedded_pdf_in_small_pieces(
    service: IngestService, engine: Engine
) -> None:
    # field-reports.md: a listener must take frames of several MB (a 5 MB ORU with its PDF),
    # however the network cuts them
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 14_500
    data = base64.b64encode(pdf).decode()
    payload = (
        "MSH|^~\\&|LIS|RSUD01|FHIRHUB|DINKES7472|20240105083000||ORU^R01^ORU_R01|BIGPDF|P|2.5\r"
        "PID|1||000123^^^RSUD01^MR||DOE^JOHN||19800101|M\r"
        "OBR|1|R-PDF||11502-2^Laboratory report^LN|||20240105083000\r"
        "OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|70-140|N|||F\r"
        f"OBX|2|ED|11502-2^Laboratory report^LN||^application^pdf^Base64^{data}||||||F"
    ).encode()
    assert len(payload) > 4_900_000
    framed = b"\x0b" + payload + b"\x1c\r"
    with running(service.pipeline) as (_, port):
        client = Client(port)
        for i in range(0, len(framed), 1400):  # a TCP segment at a time
            client.send_raw(framed[i : i + 1400])
        ack = client.receive()
        client.close()
    assert (ack.code, ack.control_id) == ("AA", "BIGPDF")
    with engine.connect() as conn:
        (content,) = conn.execute(
            text("SELECT content FROM resources WHERE res_type = 'DiagnosticReport'")
        ).one()
    report = orjson.loads(content) if isinstance(content, str | bytes) else content
    assert report["presentedForm"] == [{"contentType": "application/pdf", "data": data}]
    assert counts(engine)["Observation"] == 1
