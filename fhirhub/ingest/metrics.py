"""Prometheus metrics of this process's ingest work (the inbox table holds the totals)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECEIVED = Counter(
    "fhirhub_ingest_received", "Payloads received, duplicates included", ["source", "duplicate"]
)
FINISHED = Counter(
    "fhirhub_ingest_finished", "Messages processed by outcome", ["source", "outcome"]
)
LATENCY = Histogram(
    "fhirhub_ingest_processing_seconds",
    "Time to map and store one message",
    ["source", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
HL7_MESSAGES = Counter(
    "fhirhub_hl7_messages",
    "HL7 v2 messages answered, by message type and trigger and by acknowledgement code",
    ["source", "type", "ack"],
)
