"""MeasureReports kept in the store: one per (measure, period, Puskesmas), with a stable id, so
that evaluating a period again after more data arrived changes only the reports whose numbers
changed (the generation ``date`` alone is no change)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from fhirhub.services.measures.export import measure_id
from fhirhub.services.writes import Writer

_UNSAFE = re.compile(r"[^A-Za-z0-9\-.]")


def report_id(report: Mapping[str, Any]) -> str:
    parts = [measure_id(report), report["period"]["start"], report["period"]["end"]]
    reporter = report.get("reporter") or {}
    if reporter:
        parts.append(str(reporter.get("display") or reporter.get("identifier", {}).get("value")))
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


def last_month(today: date) -> list[tuple[str, str]]:
    """The period parameters of the calendar month before ``today``."""
    first = today.replace(day=1)
    prev = first - timedelta(days=1)
    return [("periodStart", prev.strftime("%Y-%m")), ("periodEnd", prev.strftime("%Y-%m"))]


def year_to_date(today: date) -> list[tuple[str, str]]:
    """From 1 January of the week's year to ``today`` (the surveillance alerts' period)."""
    return [("periodStart", f"{today.year}-01-01"), ("periodEnd", today.isoformat())]


def run(
    engine: Engine,
    directory: Path,
    params: list[tuple[str, str]],
    measure_ids: list[str] | None = None,
    *,
    keep_reports: bool = True,
    keep_alerts: bool = True,
) -> dict[str, int]:
    """Evaluate the Measures for a period and keep the reports and the surveillance alerts:
    what the monthly and weekly jobs run."""
    from fhirhub.services.measures import alerts
    from fhirhub.services.measures.evaluate import evaluate_many
    from fhirhub.storage.repository import ResourceRepository

    with engine.connect() as conn:
        reports = evaluate_many(conn, directory, measure_ids, params)
    out = {"reports": len(reports)}
    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn))
        if keep_reports:
            out["reports_stored"] = store(writer, reports)[1]
        if keep_alerts:
            out["alerts"], out["alerts_stored"] = alerts.store(writer, reports)
        writer.flush()
    return out
