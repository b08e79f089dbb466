"""MeasureReports kept in the store: one per (measure, period, Puskesmas), with a stable id, so
that evaluating a period again after more data arrived changes only the reports whose numbers
changed (the generation ``date`` alone is no change)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from fhirhub.services.measures.export import measure_id
from fhirhub.services.writes import Writer

_UNSAFE = re.compile(r"[^A-Za-z0-9\-.]")


def report_id(report: Mapping[str, Any]) -> str:
    parts = [measure_id(report), report["period"]["start"], report["period"]["end"]]
    reporter = report.get("reporter") or {}
    if reporter:
        parts.append(str(reporter.get("display") or reporter.get("reference", "")))
    if report.get("type") != "summary":
        parts.append(str(report.get("type")))
    return _UNSAFE.sub("-", "-".join(parts))[:64]


def _same(stored: str | None, report: Mapping[str, Any]) -> bool:
    if stored is None:
        return False
    before = orjson.loads(stored)
    for key in ("meta", "id", "date"):
        before.pop(key, None)
    now = {k: v for k, v in report.items() if k not in ("meta", "id", "date")}
    return bool(before == now)


def store(writer: Writer, reports: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """Store ``reports`` through the one write path: (reports, of them new or changed)."""
    total = changed = 0
    for report in reports:
        total += 1
        rid = report_id(report)
        prev = writer.head("MeasureReport", rid)
        if prev is not None and not prev.deleted and _same(prev.content, report):
            continue
        writer.update("MeasureReport", rid, {**report, "id": rid})
        changed += 1
    return total, changed
