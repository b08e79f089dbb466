"""MeasureReports as tables (CSV, XLSX) and as a DHIS2 ``dataValueSets`` payload.

Every report flattens to rows: one for the group's totals and one per stratum, each with its
population counts, score and alert flag. The DHIS2 payload maps (indicator, group, population)
to a data element and a stratum to an org unit or a category option combo, as
``measures/dhis2.json`` configures them; what the mapping does not name is left out and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

POPULATIONS = ("initial-population", "denominator", "numerator")
COLUMNS = (
    "measure",
    "group",
    "period_start",
    "period_end",
    "stratifier",
    "stratum",
    *POPULATIONS,
    "score",
    "alert",
)
ALERT_URL = "https://fhirhub.baubaukota.go.id/StructureDefinition/measure-alert"


def measure_id(report: Mapping[str, Any]) -> str:
    return str(report["measure"]).split("|")[0].rsplit("/", 1)[-1]


def _text(value: Mapping[str, Any]) -> str:
    codings = value.get("coding") or []
    return str(codings[0]["code"] if codings else value.get("text", ""))


def _row(
    report: Mapping[str, Any], group: str, stratifier: str, stratum: str, part: Mapping[str, Any]
) -> dict[str, Any]:
    counts = {p["code"]["coding"][0]["code"]: p.get("count") for p in part.get("population", [])}
    alert = any(
        e.get("url") == ALERT_URL and e.get("valueBoolean") for e in part.get("extension", [])
    )
    return {
        "measure": measure_id(report),
        "group": group,
        "period_start": report["period"]["start"],
        "period_end": report["period"]["end"],
        "stratifier": stratifier,
        "stratum": stratum,
        **{p: counts.get(p) for p in POPULATIONS},
        "score": (part.get("measureScore") or {}).get("value"),
        "alert": alert or None,
    }


def rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for group in report.get("group", []):
        gname = _text(group["code"]) if "code" in group else ""
        out.append(_row(report, gname, "", "", group))
        for stratifier in group.get("stratifier", []):
            sname = _text(stratifier["code"][0])
            for stratum in stratifier.get("stratum", []):
                if "component" in stratum:
                    value = " ".join(_text(c["value"]) for c in stratum["component"])
                else:
                    value = _text(stratum["value"])
                out.append(_row(report, gname, sname, value, stratum))
    return out


def dhis2_period(start: date, end: date) -> str:
    """DHIS2's period id: ``2025`` (a calendar year), ``202503`` (a month), else the range."""
    if (start.month, start.day, end.month, end.day) == (1, 1, 12, 31) and start.year == end.year:
        return f"{start.year}"
    if start.day == 1 and start.year == end.year and start.month == end.month:
        nxt = date(end.year + (end.month == 12), end.month % 12 + 1, 1)
        if (nxt - end).days == 1:
            return f"{start.year}{start.month:02d}"
    return f"{start.isoformat()}_{end.isoformat()}"


@dataclass
class Dhis2Payload:
    body: dict[str, Any]
    unmapped: int = 0
    values: list[dict[str, Any]] = field(default_factory=list)


def dhis2(reports: Iterable[Mapping[str, Any]], mapping: Mapping[str, Any]) -> Dhis2Payload:
    elements: Mapping[str, Mapping[str, str]] = mapping.get("dataElements", {})
    org_units: Mapping[str, str] = mapping.get("orgUnits", {})
    combos: Mapping[str, Mapping[str, str]] = mapping.get("categoryOptionCombos", {})
    default_combo = mapping.get("defaultCategoryOptionCombo", "default")
    city = org_units.get("city")
    values: list[dict[str, Any]] = []
    unmapped = 0
    for report in reports:
        start = date.fromisoformat(report["period"]["start"])
        end = date.fromisoformat(report["period"]["end"])
        period = dhis2_period(start, end)
        for row in rows(report):
            key = row["measure"] + (f"/{row['group']}" if row["group"] else "")
            element = elements.get(key)
            org, combo = city, default_combo
            if row["stratifier"] == "puskesmas":
                org = org_units.get(row["stratum"])
            elif row["stratifier"]:
                combo = combos.get(row["stratifier"], {}).get(row["stratum"])
            for pop in POPULATIONS:
                if row[pop] is None:
                    continue
                code = (element or {}).get(pop)
                if code is None or org is None or combo is None:
                    unmapped += 1
                    continue
                values.append(
                    {
                        "dataElement": code,
                        "period": period,
                        "orgUnit": org,
                        "categoryOptionCombo": combo,
                        "value": str(row[pop]),
                    }
                )
    body = {
        "dataSet": mapping.get("dataSet"),
        "idScheme": mapping.get("idScheme", "CODE"),
        "dataValues": values,
    }
    if body["dataSet"] is None:
        del body["dataSet"]
    return Dhis2Payload(body, unmapped, values)


def sheet_name(measure: str, taken: Sequence[str]) -> str:
    """An Excel sheet name (at most 31 characters, unique)."""
    name = measure[:31]
    n = 2
    while name in taken:
        name = f"{measure[:28]}~{n}"
        n += 1
    return name
