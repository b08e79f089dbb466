"""Turn the official R4 definitions into fhirhub's committed search-parameter table.

Reads ``search-parameters.json`` (SearchParameter Bundle), ``profiles-resources.json`` and
``profiles-types.json`` (StructureDefinitions and CompartmentDefinitions) from the FHIR R4 4.0.1
definitions and writes ``fhirhub/search/data/search_parameters.json``: per resource type, each
parameter with its type and its FHIRPath expression compiled to *typed paths* (keys to walk,
filters, the FHIR type at the end), so that the server never needs the definitions or a FHIRPath
engine at run time for the common expressions. Expressions it cannot compile keep their FHIRPath
text and are evaluated with fhirpathpy. fhirhub's own SearchParameters
(``conformance/search-parameters/``) are not in the table: :mod:`fhirhub.search.registry` reads
them at run time.

Usage: python scripts/build_search_params.py [DEFINITIONS_DIR]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEFS = Path("/work/shared/fhir-r4")
OUT = ROOT / "fhirhub" / "search" / "data" / "search_parameters.json"

PRIMITIVES = {
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
    "instant", "integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt",
    "uri", "url", "uuid", "xhtml",
}  # fmt: skip

# Parameters whose values fhirhub does not index, with the reason given in the
# CapabilityStatement.
UNSUPPORTED_BY_CODE = {
    "_text": "full-text search of the narrative is not supported",
    "_content": "full-text search of the resource is not supported",
    "_query": "named queries are not supported",
    "_list": "_list is not supported",
    "near": "geographic (special) search is not supported",
}


# The FHIR types fhirhub's indexer turns into values of each parameter type. A path reaching any
# other type (SampledData for a quantity, Age for a date...) is dropped and named in the table.
INDEXABLE = {
    "token": {"CodeableConcept", "Coding", "Identifier", "ContactPoint", "code", "string", "id",
              "uri", "url", "canonical", "oid", "uuid", "boolean", "deceased",
              "http://hl7.org/fhirpath/System.String"},
    "date": {"date", "dateTime", "instant", "Period", "Timing", "string"},
    "string": {"string", "markdown", "HumanName", "Address", "code", "id", "uri", "url",
               "canonical", "CodeableConcept"},
    "number": {"decimal", "integer", "positiveInt", "unsignedInt", "Range"},
    "quantity": {"Quantity", "Age", "Duration", "Count", "Distance", "Money", "Range",
                 "SimpleQuantity", "MoneyQuantity", "decimal", "integer"},
    "reference": {"Reference", "canonical", "uri", "url", "Resource"},
    "uri": {"uri", "url", "canonical", "oid", "uuid", "string"},
}  # fmt: skip


def keep_indexable(
    ptype: str, paths: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """(paths the indexer can read, types of the dropped ones)."""
    ok = INDEXABLE.get(ptype)
    if ok is None:
        return paths, []
    kept = [x for x in paths if x["type"] in ok]
    return kept, sorted({x["type"] for x in paths if x["type"] not in ok})


class Elements:
    """Element types of every resource and data type, from the StructureDefinitions."""

    def __init__(self, sds: list[dict[str, Any]]) -> None:
        self.types: dict[str, list[str]] = {}  # "Observation.value[x]" -> ["Quantity", ...]
        self.maxes: dict[str, str] = {}  # element path -> max cardinality
        self.content_ref: dict[str, str] = {}
        self.summary: dict[str, list[str]] = {}
        self.required: dict[str, list[str]] = {}
        self.kinds: dict[str, str] = {}
        for sd in sds:
            if sd.get("derivation") == "constraint" and sd["type"] != sd["id"]:
                continue
            self.kinds[sd["id"]] = sd["kind"]
            summary, required = [], []
            for el in sd["snapshot"]["element"]:
                path = el["path"]
                self.types[path] = [t["code"] for t in el.get("type", [])]
                self.maxes[path] = el.get("max", "*")
                if "contentReference" in el:
                    self.content_ref[path] = el["contentReference"].lstrip("#")
                if path.count(".") == 1 and sd["kind"] == "resource":
                    name = path.split(".")[1].replace("[x]", "")
                    if el.get("isSummary"):
                        summary.append(name)
                    if el.get("min", 0) > 0:
                        required.append(name)
            if sd["kind"] == "resource":
                self.summary[sd["id"]] = summary
                self.required[sd["id"]] = required

    def child(self, owner: str, name: str) -> tuple[str, list[str], bool] | None:
        """(element path, its types, whether it is a choice) of ``owner.name``."""
        for path, choice in ((f"{owner}.{name}", False), (f"{owner}.{name}[x]", True)):
            if path in self.content_ref:
                ref = self.content_ref[path]
                return ref, self.types.get(ref, []) or ["BackboneElement"], False
            if path in self.types:
                return path, self.types[path], choice
        return None


def split_union(expr: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur.strip())
    return [p for p in parts if p]


STEP = re.compile(
    r"""\.(?P<name>(?!where\(|as\(|exists\()[A-Za-z][A-Za-z0-9]*)
        (?:\[(?P<index>\d+)\])?
        |\.where\(resolve\(\)\s+is\s+(?P<rtype>[A-Za-z]+)\)
        |\.where\((?P<fkey>[a-z][A-Za-z]*)\s*=\s*'(?P<fval>[^']*)'\)
        |\.as\((?P<cast>[A-Za-z]+)\)
        |\s+as\s+(?P<cast2>[A-Za-z]+)
    """,
    re.VERBOSE,
)


def compile_part(
    part: str, el: Elements, start: tuple[str, list[str]] | None = None
) -> tuple[str, list[dict[str, Any]]] | None:
    """Compile one union branch to (resource type, typed paths), or None if too complex.

    With ``start`` (element path, types), ``part`` is relative to that element (a composite's
    component expression) and the resource type returned is that element path.
    """
    p = part.strip()
    if start is not None:
        p = "." + p if not p.startswith("(") else "(." + p[1:]
    # "(X.a.b as T)" and "(X.a as T).text"
    m = re.fullmatch(r"\((.*)\)(\.[A-Za-z]+)?", p)
    if m and "(" not in m.group(1).replace("resolve()", "").replace("where(", ""):
        p = m.group(1) + (m.group(2) or "")
    if start is not None:
        rtype, rest = start[0], p
        paths: list[tuple[list[list[Any]], str, list[str]]] = [([], start[0], start[1])]
    else:
        m = re.match(r"[A-Z][A-Za-z]*", p)
        if not m:
            return None
        rtype = m.group(0)
        rest = p[m.end() :]
        paths = [([], rtype, [rtype])]
    pos = 0
    while pos < len(rest):
        sm = STEP.match(rest, pos)
        if not sm:
            return None
        pos = sm.end()
        new: list[tuple[list[list[Any]], str, list[str]]] = []
        if sm.group("name"):
            name = sm.group("name")
            for steps, owner, types in paths:
                owners = (
                    [owner]
                    if (types and types[0] in ("BackboneElement", "Element", rtype)) or not steps
                    else types
                )
                if not owners:
                    owners = [owner]
                for o in owners:
                    if o in PRIMITIVES:
                        continue
                    found = el.child(o, name)
                    if found is None:
                        continue
                    epath, etypes, choice = found
                    if choice:
                        for t in etypes:
                            key = name + t[0].upper() + t[1:]
                            new.append(
                                (
                                    [*steps, [key, None, el.maxes.get(epath, "*")]],
                                    epath if t in ("BackboneElement", "Element") else t,
                                    [t],
                                )
                            )
                    else:
                        nt = etypes or ["BackboneElement"]
                        owner2 = epath if nt[0] in ("BackboneElement", "Element") else nt[0]
                        new.append(([*steps, [name, None, el.maxes.get(epath, "*")]], owner2, nt))
            if sm.group("index") is not None:
                for steps, _o, _t in new:
                    steps[-1] = [steps[-1][0], ["index", int(sm.group("index"))], "1"]
        elif sm.group("rtype"):
            for steps, owner, types in paths:
                steps[-1] = [steps[-1][0], ["reftype", sm.group("rtype")], *steps[-1][2:]]
                new.append((steps, owner, types))
        elif sm.group("fkey"):
            for steps, owner, types in paths:
                steps[-1] = [
                    steps[-1][0],
                    ["eq", sm.group("fkey"), sm.group("fval")],
                    *steps[-1][2:],
                ]
                new.append((steps, owner, types))
        else:
            cast = sm.group("cast") or sm.group("cast2")
            for steps, owner, types in paths:
                if cast in types or (cast == "Quantity" and types[0] in ("Age", "Duration")):
                    if len(types) > 1 and steps:  # a choice reached without its suffix
                        return None
                    new.append((steps, owner if types[0] not in PRIMITIVES else cast, [cast]))
        paths = new
        if not paths:
            return rtype, []
    out = []
    for steps, owner, types in paths:
        t = types[0] if len(types) == 1 else None
        if t is None:
            if all(x == "Resource" for x in types):
                t = "Resource"
            else:
                return None
        if t in ("BackboneElement", "Element"):
            t = owner
        single = all(len(st) > 2 and st[2] == "1" for st in steps)
        out.append({"steps": [st[:2] for st in steps], "type": t, "single": single})
    return rtype, out


def main() -> None:
    defs = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEFS
    bundle = json.loads((defs / "search-parameters.json").read_text())
    sps = [e["resource"] for e in bundle["entry"]]
    res = json.loads((defs / "profiles-resources.json").read_text())
    types = json.loads((defs / "profiles-types.json").read_text())
    sds = [e["resource"] for e in res["entry"] + types["entry"]]
    el = Elements([s for s in sds if s["resourceType"] == "StructureDefinition"])
    resource_types = sorted(
        s["id"]
        for s in sds
        if s["resourceType"] == "StructureDefinition"
        and s["kind"] == "resource"
        and not s.get("abstract")
        and s.get("derivation") == "specialization"
    )
    by_url = {sp["url"]: sp for sp in sps}
    params: dict[str, dict[str, Any]] = {t: {} for t in resource_types}
    docs: dict[str, str] = {}
    for sp in sps:
        docs[sp["url"]] = sp.get("description", "")
        bases = sp["base"]
        if bases == ["Resource"] or bases == ["DomainResource"]:
            bases = ["Resource"]
            params.setdefault("Resource", {})
        expr = sp.get("expression")
        compiled: dict[str, list[dict[str, Any]]] = {}
        fallback: dict[str, str] = {}
        if expr:
            # "X.deceased.exists() and X.deceased != false": true when deceased[x] is present
            # and not the boolean false; the indexer knows this shape as type "deceased".
            dm = re.fullmatch(r"([A-Z][A-Za-z]*)\.(\w+)\.exists\(\) and \1\.\2 != false", expr)
            if dm:
                compiled[dm.group(1)] = [{"steps": [], "type": "deceased", "field": dm.group(2)}]
                expr_parts: list[str] = []
            else:
                expr_parts = split_union(expr)
            for part in expr_parts:
                c = compile_part(part, el)
                m = re.match(r"\(?([A-Z][A-Za-z]*)", part)
                ptype = m.group(1) if m else None
                if c is None:
                    if ptype:
                        fallback[ptype] = (
                            f"{fallback[ptype]} | {part}" if ptype in fallback else part
                        )
                    continue
                compiled.setdefault(c[0], []).extend(c[1])
        for base in bases:
            entry: dict[str, Any] = {"url": sp["url"], "type": sp["type"]}
            if expr:
                own = [x for x in split_union(expr) if re.match(rf"\(?{base}\.", x)]
                entry["expression"] = " | ".join(own) if own and base != "Resource" else expr
            if sp.get("target"):
                entry["target"] = sp["target"]
            reason = UNSUPPORTED_BY_CODE.get(sp["code"])
            if sp["type"] == "special" and not reason:
                reason = "special parameters are not supported"
            if not expr and not reason and sp["code"] not in ("_id", "_lastUpdated"):
                reason = "the definition has no FHIRPath expression"
            key = "Resource" if base == "Resource" else base
            if sp["type"] == "composite":
                comps = []
                for comp in sp.get("component", []):
                    csp = by_url.get(comp["definition"])
                    if csp is None:
                        reason = reason or f"component {comp['definition']} is not defined"
                        break
                    cexpr = comp["expression"]
                    cpaths: list[dict[str, Any]] = []
                    root_types = _root_types(compiled.get(base, []))
                    for cpart in split_union(cexpr):
                        ok = False
                        for rt in root_types:
                            c = compile_part(cpart, el, (rt, [rt]))
                            if c is not None:
                                cpaths.extend(c[1])
                                ok = True
                        if not ok and not reason:
                            reason = f"component expression {cexpr!r} is not supported"
                    unique = {json.dumps(c, sort_keys=True): c for c in cpaths}
                    kept, dropped = keep_indexable(csp["type"], list(unique.values()))
                    if not kept and not reason:
                        reason = (
                            f"component '{cexpr}' reaches {', '.join(dropped) or 'nothing'}, "
                            f"which is not a {csp['type']} (an error in the definition)"
                        )
                    comps.append({"type": csp["type"], "paths": kept})
                if len(comps) != 2 and not reason:
                    reason = "composites of more than two components are not supported"
                entry["components"] = comps
            if compiled.get(base):
                # one value at most per resource: every path singular, and several paths only as
                # the expansions of one choice element (effectiveDateTime | effectivePeriod)
                cps = compiled[base]
                roots = {p["steps"][0][0] if p["steps"] else "" for p in cps}
                stems = {re.sub(r"[A-Z].*$", "", r) for r in roots}
                entry["single"] = all(p.get("single") for p in cps) and (
                    len(cps) == 1 or (len(stems) == 1 and all(len(p["steps"]) == 1 for p in cps))
                )
            if base in compiled:
                if sp["type"] == "composite":
                    entry["paths"] = compiled[base]
                else:
                    kept, dropped = keep_indexable(sp["type"], compiled[base])
                    entry["paths"] = kept
                    if dropped:
                        entry["unindexed"] = dropped
                    if not kept and not reason:
                        reason = f"its expression reaches only {', '.join(dropped)}"
            if base in fallback:
                entry["fhirpath"] = fallback[base]
            if base != "Resource" and expr and base not in compiled and base not in fallback:
                reason = reason or "the expression does not apply to this resource type"
            if reason:
                entry["unsupported"] = reason
            params.setdefault(key, {})[sp["code"]] = entry
    for rtype, ps in params.items():
        if rtype != "Resource":
            find_aliases(ps)
    compartments: dict[str, dict[str, list[str]]] = {}
    for s in sds:
        if s["resourceType"] == "CompartmentDefinition":
            compartments[s["code"]] = {
                r["code"]: r["param"] for r in s.get("resource", []) if r.get("param")
            }
    out = {
        "source": "HL7 FHIR R4 search-parameters.json, profiles-resources.json, "
        "profiles-types.json",
        "fhirVersion": "4.0.1",
        "build": "4.0.1-9346c8cc45",
        "resourceTypes": resource_types,
        "params": params,
        "documentation": docs,
        "compartments": compartments,
        "summary": el.summary,
        "required": el.required,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, separators=(",", ":"), sort_keys=True) + "\n")
    n = sum(len(v) for v in params.values())
    uns = sum(1 for v in params.values() for p in v.values() if "unsupported" in p)
    fb = sum(1 for v in params.values() for p in v.values() if "fhirpath" in p)
    print(f"wrote {OUT.relative_to(ROOT)}: {n} parameters, {uns} unsupported, {fb} via fhirpathpy")


def _sig(p: dict[str, Any]) -> tuple[str, frozenset[str], str]:
    """(type, its paths, its components) in comparable form."""
    paths = frozenset(
        json.dumps({"steps": x["steps"], "type": x["type"]}, sort_keys=True)
        for x in p.get("paths", [])
    )
    return p["type"], paths, json.dumps(p.get("components"), sort_keys=True)


def find_aliases(ps: dict[str, dict[str, Any]]) -> None:
    """Mark parameters whose index rows another parameter's rows already hold.

    ``phonetic`` has exactly the paths of ``name``; ``combo-code`` those of ``code`` and
    ``component-code`` together; ``patient`` is ``subject`` restricted to Patient targets. Such
    a parameter gets ``"alias": {"params": [...], "target": type or None}`` and no rows of its
    own: fewer rows to write, the same answers.
    """
    live = {
        c: p
        for c, p in ps.items()
        if "unsupported" not in p and p.get("paths") and not p.get("fhirpath")
    }
    for code, p in sorted(live.items()):
        ptype, paths, comps = _sig(p)
        others = {
            c: q
            for c, q in live.items()
            if c != code and "alias" not in q and q["type"] == ptype and _sig(q)[2] == comps
        }
        # exactly the same rows
        same = sorted(c for c, q in others.items() if _sig(q)[1] == paths)
        if same and same[0] < code:
            p["alias"] = {"params": [same[0]], "target": None}
            continue
        # the union of other parameters' rows, each wholly inside this one's
        parts = [c for c, q in others.items() if _sig(q)[1] and _sig(q)[1] < paths]
        chosen, covered = _cover(sorted(parts, key=lambda c: -len(_sig(others[c])[1])), others)
        if covered == paths and len(chosen) > 1:
            p["alias"] = {"params": sorted(chosen), "target": None}
            continue
        # a reference parameter whose every path is another's restricted by
        # where(resolve() is T), one T for all: the rows of those others with target T
        # (``Observation.patient`` is ``subject``'s Patient rows; ``AuditEvent.patient`` is
        # the Patient rows of ``agent`` and ``entity``)
        if ptype == "reference":
            target = _restricted_target(p["paths"])
            if target:
                plain = frozenset(_plain(x) for x in p["paths"])
                inside = sorted(
                    (c for c, q in others.items() if _sig(q)[1] and _sig(q)[1] <= plain),
                    key=lambda c: (-len(_sig(others[c])[1]), c),
                )
                chosen, covered = _cover(inside, others)
                if covered == plain:
                    p["alias"] = {"params": sorted(chosen), "target": target}


def _cover(ordered: list[str], others: dict[str, dict[str, Any]]) -> tuple[list[str], set[str]]:
    """Parameters taken in ``ordered``'s order while each adds paths to those taken before:
    the ones chosen, and the paths they cover together."""
    covered: set[str] = set()
    chosen = []
    for c in ordered:
        if not _sig(others[c])[1] <= covered:
            chosen.append(c)
            covered |= _sig(others[c])[1]
    return chosen, covered


def _restricted_target(paths: list[dict[str, Any]]) -> str | None:
    """T when every path ends in ``where(resolve() is T)`` with one T, else None."""
    targets = set()
    for x in paths:
        last = x["steps"][-1] if x["steps"] else None
        if not (last and last[1] and last[1][0] == "reftype"):
            return None
        targets.add(last[1][1])
    return targets.pop() if len(targets) == 1 else None


def _plain(path: dict[str, Any]) -> str:
    """A restricted path without its restriction, in ``_sig``'s form."""
    steps = path["steps"]
    plain = [*steps[:-1], [steps[-1][0], None]]
    return json.dumps({"steps": plain, "type": path["type"]}, sort_keys=True)


def _root_types(paths: list[dict[str, Any]]) -> list[str]:
    """The element paths a composite's components are evaluated from."""
    return sorted({p["type"] for p in paths}) or []


if __name__ == "__main__":
    main()
