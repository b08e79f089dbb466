"""Where every stored resource came from: ``meta.source`` and one Provenance per message.

http://hl7.org/fhir/R4/provenance.html
"""

from __future__ import annotations

import uuid
from typing import Any

from fhirhub.ingest.canonical import wita
from fhirhub.model.instant import to_instant

SOURCE_BASE = "https://fhirhub.baubaukota.go.id/source/"
INBOX_SYSTEM = "https://fhirhub.baubaukota.go.id/sid/inbox"


def source_uri(source: str, sender: str | None) -> str:
    return f"{SOURCE_BASE}{source}/{sender}" if sender else f"{SOURCE_BASE}{source}"


def stamp(
    bundle: dict[str, Any],
    *,
    message_id: int,
    source: str,
    sender: str | None,
    organization: str | None,
    checksum: str,
    now: int,
) -> None:
    """Set ``meta.source`` on every entry and add a Provenance that targets them all."""
    uri = source_uri(source, sender)
    targets: list[dict[str, str]] = []
    entries = bundle.setdefault("entry", [])
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(request, dict):
            continue
        if request.get("method") not in ("POST", "PUT"):
            continue
        meta = resource.get("meta")
        resource["meta"] = {**(meta if isinstance(meta, dict) else {}), "source": uri}
        full_url = entry.get("fullUrl")
        if not isinstance(full_url, str):
            url = str(request.get("url", ""))
            if request.get("method") == "PUT" and "?" not in url:
                full_url = url
            else:
                full_url = entry["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
        targets.append({"reference": full_url})
    if not targets:
        return
    who: dict[str, str] = {"reference": organization} if organization else {"display": uri}
    provenance = {
        "resourceType": "Provenance",
        "meta": {"source": uri},
        "target": targets,
        "recorded": wita(to_instant(now)) or to_instant(now),
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": who,
            }
        ],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {"system": INBOX_SYSTEM, "value": str(message_id)},
                    "display": f"{source} message sha256:{checksum}",
                },
            }
        ],
    }
    entries.append(
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": provenance,
            "request": {"method": "POST", "url": "Provenance"},
        }
    )
