"""Build the model tables of fhirhub/model/data/ from the official FHIR R4 definitions.

- r4_resource_types.json: the concrete resource types.
- r4_elements.json: for every resource, data type and backbone element, each JSON property as
  ``[type, repeats, required, choice]``: its type (a primitive type, or the type or backbone path
  whose properties it has), whether it repeats (max ``*``), whether it is required (min 1), and
  for a choice element (``value[x]``) the choice's name (``value``). Also each primitive type's
  JSON kind and regex, and the resource types checked against these R4 tables rather than
  fhir.resources' R4B models: R4-only types, and types whose R4 and R4B shapes differ (found by
  comparing the tables with the R4B models; see docs/adr/0002).
- r4_required_codes.json: every ``code`` element bound to a value set with strength
  ``required``, and the codes of those value sets that can be enumerated (a value set defined
  by a filter, or on a code system not shipped complete, is left out: it is not checked).

Source: HL7 FHIR R4 4.0.1, profiles-resources.json, profiles-types.json, valuesets.json and
v3-codesystems.json.gz (CC0), as shipped in ../shared/fhir-r4/.
Run: python scripts/build_model_tables.py [path/to/shared/fhir-r4]
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fhirhub" / "model" / "data" / "r4_resource_types.json"
ELEMENTS = ROOT / "fhirhub" / "model" / "data" / "r4_elements.json"
REQUIRED = ROOT / "fhirhub" / "model" / "data" / "r4_required_codes.json"

# Types that constrain Quantity (R4B's models name them as such, R4's tables as Quantity).
QUANTITY_PROFILES = ("Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity")

# Element.id and Extension.url are typed as FHIRPath system types in the definitions.
SYSTEM_TYPES = {"http://hl7.org/fhirpath/System.String": "string"}

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
    """type or backbone path -> JSON property -> [type, repeats, required, choice]."""
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
            required = el.get("min", 0) >= 1
            choice = name.removesuffix("[x]") if name.endswith("[x]") else ""
            props = table.setdefault(parent, {})
            if "contentReference" in el:
                props[name] = [el["contentReference"].lstrip("#"), repeats, required, ""]
                continue
            for t in el.get("type", []):
                code = SYSTEM_TYPES.get(t["code"], t["code"])
                if code in ("BackboneElement", "Element"):
                    code = path  # an inline element: its properties are listed under its path
                key = choice + code[0].upper() + code[1:] if choice else name
                props[key] = [code, repeats, required, choice]
    return table


def primitive_types(types: list[dict]) -> dict[str, dict[str, str]]:
    """primitive type -> its JSON kind and the regex of its value (from ``<type>.value``)."""
    out: dict[str, dict[str, str]] = {}
    for sd in types:
        if sd.get("kind") != "primitive-type":
            continue
        entry = {"kind": JSON_KIND[sd["id"]]}
        for el in sd["snapshot"]["element"]:
            if el["path"] == f"{sd['id']}.value":
                for t in el.get("type", []):
                    for ext in t.get("extension", []):
                        if ext["url"].endswith("/regex"):
                            entry["regex"] = ext["valueString"]
        out[sd["id"]] = entry
    return out


def r4b_differences(table: dict[str, dict[str, list]], names: list[str]) -> dict[str, list[str]]:
    """Type -> how its R4 shape (``table``) differs from fhir.resources' R4B model, through its
    own backbone elements: a property one has and the other has not, one of another type, or
    that repeats, or is required, in one only. Types with no R4B model are listed too. (A data
    type an element uses is compared on its own: see ``names``.)"""
    import types
    import typing

    from fhir.resources.R4B import get_fhir_model_class

    def r4b_fields(klass: Any) -> dict[str, tuple[bool, bool, Any]]:
        out = {}
        for field in klass.model_fields.values():
            extra = field.json_schema_extra or {}
            if not isinstance(extra, dict) or not extra.get("element_property"):
                continue
            inner = field.annotation
            if typing.get_origin(inner) in (typing.Union, types.UnionType):
                inner = next(a for a in typing.get_args(inner) if a is not type(None))
            repeats = typing.get_origin(inner) is list
            if repeats:
                inner = typing.get_args(inner)[0]
            target = inner.get_model_klass() if hasattr(inner, "get_model_klass") else None
            required = bool(field.is_required() or extra.get("element_required"))
            out[field.alias] = (repeats, required, target)
        return out

    def compare(
        r4_type: str, klass: Any, root: str, seen: frozenset[str] = frozenset()
    ) -> list[str]:
        if r4_type in seen:  # a recursive element (Questionnaire.item.item)
            return []
        seen |= {r4_type}
        r4 = table.get(r4_type, {})
        r4b = r4b_fields(klass)
        found = [f"{r4_type}.{name} is R4 only" for name in sorted(set(r4) - set(r4b))]
        found += [f"{r4_type}.{name} is R4B only" for name in sorted(set(r4b) - set(r4))]
        for name in sorted(set(r4) & set(r4b)):
            code, repeats, required, choice = r4[name]
            b_repeats, b_required, target = r4b[name]
            if repeats != b_repeats:
                found.append(f"{r4_type}.{name} repeats in {'R4' if repeats else 'R4B'} only")
            if required != b_required and not choice:
                found.append(f"{r4_type}.{name} is required in {'R4' if required else 'R4B'} only")
            if target is None or code == "Resource":
                continue
            if code.startswith(root + "."):
                found.extend(compare(code, target, root, seen))
            elif code in table and code != target.__name__ and code not in QUANTITY_PROFILES:
                found.append(f"{r4_type}.{name} is a {code} in R4, a {target.__name__} in R4B")
        return found

    differences = {}
    for name in names:
        try:
            klass = get_fhir_model_class(name)
        except ValueError:
            differences[name] = [f"{name} is R4 only"]
            continue
        found = compare(name, klass, name)
        if found:
            differences[name] = found
    return differences


def required_bindings(definitions: list[dict]) -> dict[str, dict[str, str]]:
    """type or backbone path -> JSON property -> value set URL, for required ``code`` bindings."""
    out: dict[str, dict[str, str]] = {}
    for sd in definitions:
        if sd.get("derivation") != "specialization" or sd.get("kind") == "logical":
            continue
        for el in sd["snapshot"]["element"]:
            binding = el.get("binding") or {}
            if binding.get("strength") != "required" or "." not in el["path"]:
                continue
            parent, name = el["path"].rsplit(".", 1)
            for t in el.get("type", []):
                if t["code"] == "code":
                    key = name.replace("[x]", "Code") if "[x]" in name else name
                    out.setdefault(parent, {})[key] = binding["valueSet"].split("|")[0]
    return out


class Expander:
    """The codes of a value set, from its compose, where they can be enumerated."""

    def __init__(self, resources: list[dict]) -> None:
        self.value_sets = {r["url"]: r for r in resources if r["resourceType"] == "ValueSet"}
        self.code_systems = {
            r["url"]: r
            for r in resources
            if r["resourceType"] == "CodeSystem" and r.get("content") == "complete"
        }
        self.codes_by_url: dict[str, set[str] | None] = {}

    def codes(self, url: str) -> set[str] | None:
        if url not in self.codes_by_url:
            self.codes_by_url[url] = None  # a cycle is not enumerable
            self.codes_by_url[url] = self._expand(url)
        return self.codes_by_url[url]

    def _expand(self, url: str) -> set[str] | None:
        vs = self.value_sets.get(url)
        if vs is None or "compose" not in vs:
            return None
        codes: set[str] = set()
        for include in vs["compose"].get("include", []):
            part = self._part(include)
            if part is None:
                return None
            codes |= part
        for exclude in vs["compose"].get("exclude", []):
            part = self._part(exclude)
            if part is None:
                return None
            codes -= part
        return codes or None

    def _part(self, include: dict) -> set[str] | None:
        if include.get("filter"):
            return None
        part: set[str] | None = None
        if "concept" in include:
            part = {c["code"] for c in include["concept"]}
        elif "system" in include:
            system = self.code_systems.get(include["system"])
            if system is None:
                return None
            part = set(_all_codes(system.get("concept", [])))
        for ref in include.get("valueSet", []):
            sub = self.codes(ref.split("|")[0])
            if sub is None:
                return None
            part = sub if part is None else part & sub
        return part


def _all_codes(concepts: list[dict]) -> list[str]:
    out = []
    for c in concepts:
        out.append(c["code"])
        out.extend(_all_codes(c.get("concept", [])))
    return out


def write_required_codes(src: Path, definitions: list[dict]) -> None:
    terminology = [e["resource"] for e in json.loads((src / "valuesets.json").read_text())["entry"]]
    with gzip.open(src / "v3-codesystems.json.gz") as fh:
        terminology += [e["resource"] for e in json.load(fh)["entry"]]
    expander = Expander(terminology)
    bindings: dict[str, dict[str, str]] = {}
    value_sets: dict[str, list[str]] = {}
    for parent, props in required_bindings(definitions).items():
        for key, url in props.items():
            codes = expander.codes(url)
            if codes is None:
                continue
            bindings.setdefault(parent, {})[key] = url
            value_sets[url] = sorted(codes)
    REQUIRED.write_text(
        json.dumps(
            {
                "source": "HL7 FHIR R4 4.0.1 profiles-types.json, profiles-resources.json,"
                " valuesets.json, v3-codesystems.json.gz (CC0-1.0)",
                "bindings": bindings,
                "valueSets": value_sets,
            },
            separators=(",", ":"),
            sort_keys=True,
        )
        + "\n"
    )
    count = sum(len(p) for p in bindings.values())
    print(f"{count} required code bindings, {len(value_sets)} value sets -> {REQUIRED.name}")


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
    data_types = sorted(
        sd["id"]
        for sd in definitions
        if sd.get("kind") == "complex-type" and sd.get("derivation") == "specialization"
    )
    strict_resources = r4b_differences(table, types)
    strict_types = r4b_differences(table, data_types)
    ELEMENTS.write_text(
        json.dumps(
            {
                "source": "HL7 FHIR R4 4.0.1 profiles-types.json, profiles-resources.json"
                " (CC0-1.0)",
                "elements": table,
                "primitives": primitive_types(definitions),
                "checkedAgainstR4": {"resources": strict_resources, "dataTypes": strict_types},
            },
            separators=(",", ":"),
            sort_keys=True,
        )
        + "\n"
    )
    print(f"{len(table)} element tables -> {ELEMENTS.relative_to(ROOT)}")
    for kind, found in (("resource", strict_resources), ("data", strict_types)):
        print(f"{len(found)} {kind} types checked against R4: {', '.join(found)}")
    write_required_codes(src, definitions)


if __name__ == "__main__":
    main()
