"""What ``fhirhub load`` will load from the paths it is given, and what it leaves and why.

Folders are searched for files of FHIR resources: Bundle or resource JSON (``.json``) and NDJSON
(``.ndjson``, ``.jsonl``). The other files a source sends, as ``fhirhub synth`` writes them, are
left with a reason (HL7 v2 messages, SIMRS Khanza rows, BPJS payloads, the ground truth, the
manifest): fhirhub has no adapter for them yet. A file named on the command line is always
tried, so one that is not FHIR is rejected rather than left.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

NDJSON = (".ndjson", ".jsonl")
FHIR_FILES = (".json", *NDJSON)
# The tables SIMRS Khanza (the RSUD's system) exports, as fhirhub synth writes them.
KHANZA_TABLES = frozenset(
    {
        *("pasien", "reg_periksa", "diagnosa_pasien", "penyakit", "poliklinik", "penjab"),
        *("kelurahan", "kecamatan", "kabupaten", "propinsi"),
    }
)


@dataclass
class LoadPlan:
    files: list[Path] = field(default_factory=list)  # to load, in order
    units: int = 0  # resources and Bundle entries in them: the progress bar's total
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why)

    def skipped_by_folder(self) -> list[tuple[Path, str, int]]:
        """(folder, why, how many files), in the order met."""
        counts = Counter((path.parent, why) for path, why in self.skipped)
        return [(folder, why, n) for (folder, why), n in counts.items()]


def plan(paths: list[Path]) -> LoadPlan:
    out = LoadPlan()
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if any(part.startswith(".") for part in file.relative_to(path).parts):
                    continue  # hidden files and folders (.git, editor files)
                body = _json(file) if file.suffix.lower() == ".json" else None
                why = _not_fhir(file, body)
                if why is None:
                    out.files.append(file)
                    out.units += units(file, body)
                else:
                    out.skipped.append((file, why))
        else:  # named on the command line: tried, whatever it is
            out.files.append(path)
            out.units += units(path)
    return out


def units(path: Path, body: Any = None) -> int:
    """How many resources or Bundle entries a file holds (1 for anything else); ``body`` is
    the file's JSON when it was read already."""
    if path.suffix in NDJSON:
        with path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    if body is None:
        body = _json(path)
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        entries = body.get("entry")
        return len(entries) if isinstance(entries, list) else 0
    return 1


def _not_fhir(path: Path, body: Any) -> str | None:
    """Why a file found in a folder is not loaded, or None when it holds FHIR resources."""
    suffix = path.suffix.lower()
    if suffix in (".hl7", ".hl7v2"):
        return "HL7 v2 messages (no HL7 v2 adapter yet: the RSUD feed is a coming source)"
    if path.parent.name == "truth" and suffix in (".csv", ".json"):
        return "fhirhub synth's ground truth (for tests), not FHIR"
    if suffix == ".csv":
        if path.stem in KHANZA_TABLES:
            return "SIMRS Khanza table rows (no Khanza adapter yet)"
        return "CSV, not FHIR"
    if suffix not in FHIR_FILES:
        return f"not a FHIR file ({suffix or 'no extension'}; loaded: .json, .ndjson, .jsonl)"
    first = _first_line(path) if suffix in NDJSON else body
    if isinstance(first, dict) and isinstance(first.get("resourceType"), str):
        return None
    if first is None:
        return None  # broken JSON (or an empty file): tried, and rejected with the reason
    if isinstance(first, dict) and _bpjs(first):
        return "BPJS VClaim/P-Care payloads, not FHIR (no BPJS adapter yet)"
    if isinstance(first, dict) and first.get("generator") == "fhirhub.synth":
        return "fhirhub synth's manifest, not FHIR"
    if path.name == "stats.json":
        return "fhirhub synth's figures, not FHIR"
    return "JSON without a resourceType, not FHIR"


def _bpjs(payload: dict[str, Any]) -> bool:
    """A VClaim or P-Care envelope, SEP request or kunjungan body (national-apis.md B.3-B.5)."""
    request = payload.get("request")
    return (
        "metaData" in payload
        or "noKartu" in payload
        or (isinstance(request, dict) and "t_sep" in request)
    )


def _json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (orjson.JSONDecodeError, OSError):
        return None


def _first_line(path: Path) -> Any:
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    return orjson.loads(line)
                except orjson.JSONDecodeError:
                    return None
    return None
