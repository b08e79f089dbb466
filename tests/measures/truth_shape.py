"""A MeasureReport in the shape of the generator's ``truth/indicators.json`` (docs/synth.md), so
that the two compare with ``==``."""

from __future__ import annotations

from typing import Any

ALERT = "https://fhirhub.baubaukota.go.id/StructureDefinition/measure-alert"


def _pops(populations: list[dict[str, Any]], score: Any, prefix: str = "") -> dict[str, Any]:
    out = {prefix + p["code"]["coding"][0]["code"]: p["count"] for p in populations}
    if score is not None:
        out[prefix + "score"] = score["value"]
    return out


def _code(value: dict[str, Any]) -> str:
    codings = value.get("coding") or []
    return codings[0]["code"] if codings else value["text"]


def shape(report: dict[str, Any]) -> dict[str, Any]:
    measure = report["measure"].split("|")[0].rsplit("/", 1)[-1]
    if measure == "morb-01":
        out: dict[str, Any] = {}
        for stratum in report["group"][0]["stratifier"][0].get("stratum", []):
            fac, cat = (_code(c["value"]) for c in stratum["component"])
            count = stratum["population"][0]["count"]
            out.setdefault(fac, []).append({"category": cat, "count": count})
        return {"facility": out}
    if measure.startswith("surv-"):
        out = {}
        for stratum in report["group"][0]["stratifier"][0].get("stratum", []):
            fac, week = (_code(c["value"]) for c in stratum["component"])
            alert = any(
                e["url"] == ALERT and e["valueBoolean"] for e in stratum.get("extension", [])
            )
            out.setdefault(fac, []).append(
                {"week": week, "count": stratum["population"][0]["count"], "alert": alert}
            )
        return {"facility": out}
    shaped: dict[str, Any] = {}
    prefixes = [
        g["code"]["coding"][0]["code"] + "/" if "code" in g else "" for g in report["group"]
    ]
    for group in report["group"]:
        prefix = group["code"]["coding"][0]["code"] + "/" if "code" in group else ""
        city = shaped.setdefault("city", {}).setdefault("7472", {})
        city.update(_pops(group["population"], group.get("measureScore"), prefix))
        for stratifier in group["stratifier"]:
            name = stratifier["code"][0]["coding"][0]["code"]
            level = shaped.setdefault(name, {})
            for stratum in stratifier.get("stratum", []):
                key = _code(stratum["value"])
                level.setdefault(key, {}).update(
                    _pops(stratum["population"], stratum.get("measureScore"), prefix)
                )
    for level in shaped.values():  # a stratum one group lacks counts 0 in it (as the truth says)
        for pops in level.values():
            for prefix in prefixes:
                pops.setdefault(prefix + "numerator", 0)
    return shaped


def restricted(ours: Any, truth: Any) -> Any:
    """``ours`` with, in each stratum's populations, only the keys the truth states (the truth
    leaves out P-kind denominators and the initial population of counts)."""
    if isinstance(truth, dict) and isinstance(ours, dict):
        if truth and all(not isinstance(v, dict | list) for v in truth.values()):
            return {k: v for k, v in ours.items() if k in truth}
        return {k: restricted(v, truth.get(k, {})) for k, v in ours.items()}
    return ours
