"""Alerts of the weekly surveillance indicators (surv-01, surv-02) as ``Communication``
resources to Dinkes, which a web page or a subscription can show.

One Communication per (indicator, facility, epi week) that alerts, with a stable id, so that
storing the alerts of a period again changes nothing that did not change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from fhirhub.services.measures.export import ALERT_URL, measure_id
from fhirhub.services.writes import Writer

FACILITY = "https://fhirhub.baubaukota.go.id/sid/facility"
INDICATOR = "https://fhirhub.baubaukota.go.id/sid/indicator"
DINKES = {
    "identifier": {"system": "http://sys-ids.kemkes.go.id/organization", "value": "7472"},
    "display": "Dinas Kesehatan Kota Baubau",
}
_WEEK = re.compile(r"(\d{4})-W(\d{2})")


def _week_end(label: str) -> str:
    """The Saturday ending an MMWR epi week, at the end of the day in Baubau."""
    m = _WEEK.fullmatch(label)
    assert m is not None, label
    year, week = int(m[1]), int(m[2])
    jan4 = date(year, 1, 4)
    start = jan4 - timedelta(days=(jan4.weekday() + 1) % 7) + timedelta(weeks=week - 1)
    return f"{(start + timedelta(days=6)).isoformat()}T23:59:59+08:00"


def communications(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Communications of the alerts a surveillance MeasureReport flags."""
    mid = measure_id(report)
    out = []
    for group in report.get("group", []):
        for stratifier in group.get("stratifier", []):
            for stratum in stratifier.get("stratum", []):
                if not any(
                    e.get("url") == ALERT_URL and e.get("valueBoolean")
                    for e in stratum.get("extension", [])
                ):
                    continue
                parts = {
                    c["code"]["coding"][0]["code"]: c["value"]["text"]
                    for c in stratum.get("component", [])
                }
                facility, week = parts.get("facility"), parts.get("epi-week")
                if not facility or not week:
                    continue
                count = next((p["count"] for p in stratum.get("population", [])), 0)
                rid = f"alert-{mid}-{facility}-{week}".lower()
                out.append(
                    {
                        "resourceType": "Communication",
                        "id": rid,
                        "status": "completed",
                        "category": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/communication-category",
                                        "code": "alert",
                                    }
                                ]
                            }
                        ],
                        "priority": "urgent",
                        "about": [
                            {"identifier": {"system": INDICATOR, "value": mid}, "display": mid},
                            {
                                "identifier": {"system": FACILITY, "value": facility},
                                "display": facility,
                            },
                        ],
                        "sent": _week_end(week),
                        "recipient": [DINKES],
                        "reasonCode": [{"text": mid}],
                        "payload": [
                            {
                                "contentString": (
                                    f"Peringatan {mid}: {count} kasus di {facility} pada minggu "
                                    f"{week}, melewati ambang kewaspadaan."
                                )
                            }
                        ],
                    }
                )
    return out


def store(writer: Writer, reports: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """Store the alerts of ``reports`` through the one write path: (alerts, of them new or
    changed)."""
    total = 0
    before = writer.unchanged
    for report in reports:
        for comm in communications(report):
            writer.update("Communication", comm["id"], comm)
            total += 1
    return total, total - (writer.unchanged - before)
