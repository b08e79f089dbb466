"""Build the model tables of fhirhub/model/data/ from the official FHIR R4 definitions.

- r4_resource_types.json: the concrete resource types.
- r4_elements.json: for every resource, data type and backbone element, each JSON property with
  its type (a primitive's JSON kind, or the type whose properties it has) and whether it repeats.

Source: HL7 FHIR R4 4.0.1, profiles-resources.json and profiles-types.json (CC0), as shipped in
../shared/fhir-r4/. Run: python scripts/build_model_tables.py [path/to/shared/fhir-r4]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fhirhub" / "model" / "data" / "r4_resource_types.json"
ELEMENTS = ROOT / "fhirhub" / "model" / "data" / "r4_elements.json"

# The JSON kind of each primitive type (http://hl7.org/fhir/R4/json.html#primitive).
JSON_KIND = {
    "boolean": "boolean",
    "integer": "integer",
    "positiveInt": "integer",
    "unsignedInt": "integer",
    "decimal": "number",
    **{
        t: "string"
        for t in [
            "string",
            "code",
            "id",
            "uri",
            "url",
            "canonical",
            "oid",
            "uuid",
            "markdown",
            "base64Binary",
            "date",
            "dateTime",
            "instant",
            "time",
            "xhtml",
            "http://hl7.org/fhirpath/System.String",
        ]
    },
}


def element_table(definitions: list[dict]) -> dict[str, dict[str, list]]:
    """type or backbone path -> JSON property -> [kind or type, repeats]."""
    table: dict[str, dict[str, list]] = {}
    for sd in definitions:
        if sd.get("derivation") != "specialization" or sd.get("kind") == "logical":
            continue
        for el in sd["snapshot"]["element"]:
            path = el["path"]
            if "." not in path:
                continue
            parent, name = path.rsplit(".", 1)
            repeats = el.get("max") == "*"
            props = table.setdefault(parent, {})
            if "contentReference" in el:
                props[name] = [el["contentReference"].lstrip("#"), repeats]
                continue
            for t in el.get("type", []):
                code = t["code"]
                kind = JSON_KIND.get(code)
                if kind is None and code in ("BackboneElement", "Element"):
                    kind = path  # an inline element: its properties are listed under its path
                key = name.replace("[x]", code[0].upper() + code[1:]) if "[x]" in name else name
                props[key] = [kind or code, repeats]
    return table


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
    types_bundle = json.loads((src / "profiles-types.json").read_text())
    definitions = [
        e["resource"]
        for b in (types_bundle, bundle)
        for e in b["entry"]
        if e["resource"]["resourceType"] == "StructureDefinition"
    ]
    table = element_table(definitions)
    ELEMENTS.write_text(
        json.dumps(
            {
                "source": "HL7 FHIR R4 4.0.1 profiles-types.json, profiles-resources.json"
                " (CC0-1.0)",
                "elements": table,
            },
            separators=(",", ":"),
            sort_keys=True,
        )
        + "\n"
    )
    print(f"{len(table)} element tables -> {ELEMENTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
