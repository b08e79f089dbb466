"""Build fhirhub/model/data/r4_resource_types.json from the official FHIR R4 definitions.

Source: HL7 FHIR R4 4.0.1, profiles-resources.json (CC0), as shipped in ../shared/fhir-r4/.
Run: python scripts/build_model_tables.py [path/to/shared/fhir-r4]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fhirhub" / "model" / "data" / "r4_resource_types.json"


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "fhir-r4"
    bundle = json.loads((src / "profiles-resources.json").read_text())
    types = sorted(
        e["resource"]["id"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "StructureDefinition"
        and e["resource"].get("kind") == "resource"
        and not e["resource"].get("abstract")
        and e["resource"].get("derivation") == "specialization"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "source": "HL7 FHIR R4 4.0.1 profiles-resources.json (CC0-1.0)",
                "fhirVersion": "4.0.1",
                "resourceTypes": types,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"{len(types)} resource types -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
