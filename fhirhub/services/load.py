"""Loading files of resources: NDJSON (one resource a line) and Bundle JSON.

Every resource goes through the one write path. NDJSON lines are stored in transactions of a
few hundred; a line that fails validation is rejected alone and reported by file and line
(never by content). A transaction or batch Bundle is processed as ``POST /fhir`` would (a
``route`` may take the Bundles a source's adapter claims through the inbox, as ``POST /fhir``
does); the entries of a collection or searchset Bundle are stored as updates (with their ids)
or creates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from fhirhub.errors import FhirError, Issue
from fhirhub.model.json import loads
from fhirhub.model.validation import resource_issues
from fhirhub.services import transaction
from fhirhub.services.writes import Writer
from fhirhub.storage.repository import ResourceRepository

CHUNK = 500


@dataclass
class LoadReport:
    stored: int = 0
    unchanged: int = 0
    rejected: int = 0
    # "file:line: status code at expression: diagnostics", the first issue of each rejection
    problems: list[str] = field(default_factory=list)

    def reject(self, where: str, err: FhirError) -> None:
        self.rejected += 1
        if len(self.problems) < 1000:
            self.problems.append(f"{where}: {describe(err.status, err.issues[:1])}")


def describe(status: int | str, issues: list[Issue]) -> str:
    """``400 structure at Patient.gender: <diagnostics>`` for the first issue."""
    if not issues:
        return str(status)
    first = issues[0]
    where = f" at {', '.join(first.expression)}" if first.expression else ""
    why = f": {first.diagnostics}" if first.diagnostics else ""
    return f"{status} {first.code}{where}{why}"


# Takes a transaction Bundle elsewhere (a source's adapter, through the inbox) and says so by
# returning True, having counted it in the report; False leaves it to be stored here.
BundleRoute = Callable[[dict[str, Any], str, "LoadReport"], bool]


def load_paths(
    engine: Engine,
    paths: list[Path],
    *,
    base_url: str = "urn:fhirhub",
    progress: Callable[[int], None] | None = None,
    route: BundleRoute | None = None,
    report: LoadReport | None = None,
) -> LoadReport:
    """Load the files; counts go to ``report`` (a new one by default) as the work is done, so
    a caller still has them when the load is interrupted."""
    report = report if report is not None else LoadReport()
    for path in paths:
        for unit in _units(path):
            kind, where, payload = unit
            if kind == "error":
                report.reject(where, payload)
                count = 1
            elif kind == "bundle":
                _load_bundle(engine, payload, where, base_url, report, route)
                count = len(payload.get("entry", []) or []) if isinstance(payload, dict) else 1
            else:
                _load_resources(engine, payload, report)
                count = len(payload)
            if progress:
                progress(count)
    return report


def load_bundles(
    engine: Engine,
    bundles: Iterable[Any],
    *,
    base_url: str = "urn:fhirhub",
    route: BundleRoute | None = None,
) -> LoadReport:
    """Process transaction or batch Bundles given as dicts, each in its own transaction."""
    report = LoadReport()
    for i, bundle in enumerate(bundles):
        _load_bundle(engine, bundle, f"bundle {i}", base_url, report, route)
    return report


def _units(path: Path) -> Iterator[tuple[str, str, Any]]:
    if path.suffix in (".ndjson", ".jsonl"):
        chunk: list[tuple[str, Any]] = []
        with path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    chunk.append((f"{path}:{number}", line))
                if len(chunk) >= CHUNK:
                    yield "lines", str(path), chunk
                    chunk = []
        if chunk:
            yield "lines", str(path), chunk
        return
    try:
        body = loads(path.read_bytes())
    except FhirError as err:
        yield "error", str(path), err  # not JSON: rejected with the parser's explanation
        return
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        if body.get("type") in ("transaction", "batch"):
            yield "bundle", str(path), body
        else:
            entries = [
                (f"{path}#entry[{i}]", e.get("resource"))
                for i, e in enumerate(body.get("entry", []) or [])
                if isinstance(e, dict)
            ]
            for start in range(0, len(entries), CHUNK):
                yield "lines", str(path), entries[start : start + CHUNK]
    else:
        yield "lines", str(path), [(str(path), body)]


def _load_bundle(
    engine: Engine,
    bundle: Any,
    where: str,
    base_url: str,
    report: LoadReport,
    route: BundleRoute | None = None,
) -> None:
    if bundle is None:
        report.reject(where, FhirError.single(400, "structure", "not JSON"))
        return
    if route is not None and isinstance(bundle, dict) and route(bundle, where, report):
        return
    try:
        with engine.begin() as conn:
            writer = Writer(ResourceRepository(conn))
            response = transaction.process(
                writer, bundle, base_url=base_url, get=lambda url: (400, None)
            )
            writer.flush()
    except FhirError as err:
        report.reject(where, err)
        return
    done = 0
    for i, entry in enumerate(response.get("entry", [])):
        answer = entry.get("response", {})
        if answer.get("status", "").startswith("2"):
            done += 1
        else:  # a batch's entry failed alone
            outcome = answer.get("outcome") or {}
            issues = [
                Issue(j.get("code", ""), j.get("diagnostics", ""), tuple(j.get("expression", [])))
                for j in outcome.get("issue", [])[:1]
                if isinstance(j, dict)
            ]
            status = answer.get("status", "").split(" ")[0] or "?"
            report.rejected += 1
            if len(report.problems) < 1000:
                report.problems.append(f"{where}#entry[{i}]: {describe(status, issues)}")
    report.unchanged += writer.unchanged
    report.stored += done - writer.unchanged


def _load_resources(engine: Engine, items: list[tuple[str, Any]], report: LoadReport) -> None:
    valid: list[tuple[str, dict[str, Any]]] = []
    for where, raw in items:
        try:
            resource = loads(raw) if isinstance(raw, bytes | str) else raw
            issues = resource_issues(resource)
            if issues:
                raise FhirError(400, issues)
            valid.append((where, resource))
        except FhirError as err:
            report.reject(where, err)
    if not valid:
        return
    with engine.begin() as conn:
        writer = Writer(ResourceRepository(conn))
        for where, resource in valid:
            try:
                if isinstance(resource.get("id"), str):
                    result = writer.update(
                        resource["resourceType"], resource["id"], resource, validated=True
                    )
                else:
                    result = writer.create(resource, validated=True)
            except FhirError as err:
                report.reject(where, err)
                continue
            if result.changed:
                report.stored += 1
            else:
                report.unchanged += 1
        writer.flush()
