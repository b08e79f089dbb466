"""What an analyst receives: FHIR JSON without the direct identifiers of a person.

An analyst's scopes leave out ``Patient`` (and ``Coverage``, ``Claim``), but the resources it
may read can still carry a person's identity: a reference's ``display`` (the patient's name) or
``identifier`` (a NIK), a contained Patient, a narrative, a Practitioner's name and phone. Every
response to an analyst passes through :func:`scrub`, which removes, at any depth:

- human names (``name`` holding HumanNames), ``telecom``, ``photo``;
- the street part of an ``address`` (``line``, ``text``; district, city and province stay);
- the narrative (``text`` with a ``div``);
- a reference's ``display`` and ``identifier`` (a ``display`` is kept in a Coding only);
- identifiers in the person-identifier systems (NIK, the mother's NIK, IHS number, BPJS card,
  medical record numbers);
- **free text**, wholesale, in every resource but the definitional ones (Measure, Library,
  ValueSet, ...; their text is written by Dinkes, not about a person): ``note``, ``comment``,
  ``description``, ``text`` (a CodeableConcept's, a narrative's), ``valueString`` and
  ``valueMarkdown`` (an Extension's, an Observation's, a QuestionnaireResponse's answers),
  ``patientInstruction``, ``conclusion``, ``summary``, ``title`` and an attachment's ``data``:
  a name, a NIK or an address typed into a note cannot be told from the rest of it, so none of
  it is sent;
- as a belt, in every string that is left (not ids, references, systems or URLs): digit runs
  that look like a NIK (16 digits), a phone number (``08…``, ``+62 8…``, separated or not) or
  any other run of 10 or more digits are masked (``***``); not a run inside a word or an id
  (``550e8400-…-446655440000``).
"""

from __future__ import annotations

import re
from typing import Any

from fhirhub.model import systems

PERSON_SYSTEMS = frozenset({systems.NIK, systems.NIK_IBU, systems.IHS_NUMBER, systems.BPJS_CARD})
_HUMAN_NAME_KEYS = frozenset({"family", "given", "prefix", "suffix", "text", "use", "period"})
_DROPPED = ("telecom", "photo")
#: Free text, dropped from every resource but the definitional ones.
FREE_TEXT = frozenset(
    {
        "note",
        "comment",
        "description",
        "text",
        "valueString",
        "valueMarkdown",
        "patientInstruction",
        "conclusion",
        "summary",
        "title",
        "data",
    }
)
#: Resources whose text is the content's author's, not about a person.
DEFINITIONAL = frozenset(
    {
        "Measure",
        "Library",
        "ValueSet",
        "CodeSystem",
        "ConceptMap",
        "StructureDefinition",
        "SearchParameter",
        "OperationDefinition",
        "CapabilityStatement",
        "ViewDefinition",
        "Questionnaire",
        "OperationOutcome",
    }
)
#: Strings under these keys are not text (masking a digit run there would break them).
_NOT_TEXT = frozenset(
    {"id", "reference", "system", "url", "fullUrl", "versionId", "lastUpdated", "source"}
)
_DIGITS = re.compile(
    r"(?<![\w-])(?:"
    r"(?:\+?62|0)[\s.\-]?8\d{1,3}(?:[\s.\-]?\d{2,4}){2,3}"  # an Indonesian mobile number
    r"|\d{10,}"  # a NIK (16 digits), a card or record number
    r"|\d{4}[\s.\-]\d{4}[\s.\-]\d{4}[\s.\-]\d{4}"  # a NIK written in groups
    r")(?![\w-])"
)
MASK = "***"


def _is_person_identifier(identifier: Any) -> bool:
    if not isinstance(identifier, dict):
        return False
    system = identifier.get("system")
    return isinstance(system, str) and (
        system in PERSON_SYSTEMS or system.startswith(systems.MRN_BASE)
    )


def _is_human_name(value: Any) -> bool:
    names = value if isinstance(value, list) else [value]
    return bool(names) and all(
        isinstance(n, dict) and n and set(n) <= _HUMAN_NAME_KEYS | {"id", "extension"}
        for n in names
    )


def scrub(value: Any, definitional: bool = False) -> Any:
    """``value`` with the direct identifiers removed (a new structure; ``value`` is kept)."""
    if isinstance(value, list):
        return [scrub(v, definitional) for v in value]
    if isinstance(value, str):
        return mask(value)
    if not isinstance(value, dict):
        return value
    rt = value.get("resourceType")
    if isinstance(rt, str):
        definitional = rt in DEFINITIONAL
    out: dict[str, Any] = {}
    is_reference = isinstance(value.get("reference"), str)
    for key, item in value.items():
        if key in _DROPPED:
            continue
        if key == "name" and _is_human_name(item):
            continue
        if key == "text" and isinstance(item, dict) and "div" in item:
            continue
        if not definitional and (key in FREE_TEXT or key.lstrip("_") in FREE_TEXT):
            continue
        if is_reference and key in ("display", "identifier"):
            continue
        if key == "display" and "code" not in value and "system" not in value:
            continue  # a Reference's display (a name), even without a reference
        if key == "identifier":
            if _is_person_identifier(item):
                continue
            if isinstance(item, list):
                item = [i for i in item if not _is_person_identifier(i)]
        if key == "address":
            item = _address(item)
        out[key] = item if key in _NOT_TEXT else scrub(item, definitional)
    return out


def mask(text: str) -> str:
    """``text`` with its NIK-, phone- and card-number-like digit runs masked."""
    return _DIGITS.sub(MASK, text) if any(c.isdigit() for c in text) else text


def _address(value: Any) -> Any:
    if isinstance(value, list):
        return [_address(v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("line", "text")}
    return value


# --- SQL on FHIR views run by an analyst ------------------------------------------------------

#: Elements an analyst's ViewDefinition may not read: the direct identifiers and free text
#: :func:`scrub` removes from its answers (a view's rows are not FHIR JSON to scrub).
VIEW_FORBIDDEN = frozenset(
    {
        *FREE_TEXT,
        *_DROPPED,
        "name",
        "given",
        "family",
        "identifier",
        "display",
        "line",
        "contact",
        "contained",
        "div",
        "authorString",
        "string",  # ofType(string)
        "markdown",
    }
)
#: A view of these may read their ``name`` and ``identifier`` (a Puskesmas's, a place's).
_VIEW_DIRECTORY = frozenset({"Organization", "Location"})
_PATH_KEYS = ("path", "forEach", "forEachOrNull")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|`[^`]*`")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def view_refusal(view: Any) -> str | None:
    """Why an analyst may not run ``view`` (a ViewDefinition as JSON), or None."""
    if not isinstance(view, dict):
        return None
    directory = view.get("resource") in _VIEW_DIRECTORY
    for path in _view_paths(view):
        bare = _QUOTED.sub("", path)
        for token in _TOKEN.findall(bare):
            if token in VIEW_FORBIDDEN and not (directory and token in ("name", "identifier")):
                return f"An analyst's view may not read '{token}' (in '{path[:80]}')"
        if not (directory and "identifier" in bare) and _untyped_value(bare):
            return (
                f"An analyst's view may read a choice 'value' only as value.ofType(T) of a type "
                f"that is not text (in '{path[:80]}'): an extension's or an answer's value may "
                "be free text"
            )
    return None


#: Types a choice ``value`` may hold that are free text (an extension's valueString, say).
_TEXT_TYPES = frozenset({"string", "markdown"})
_VALUE = re.compile(r"(?<![\w$%])value(?![\w])")
_TYPED_AFTER = re.compile(r"\s*\.\s*ofType\(\s*(?:FHIR\.)?(\w+)\s*\)")
_TYPED_BEFORE = re.compile(r"(?:ofType\(\s*(?:FHIR\.)?(\w+)\s*\)|\bvalue([A-Z]\w*))\s*\.\s*$")


def _untyped_value(path: str) -> bool:
    """Whether ``path`` reads a choice ``value`` (an Extension's, an Observation's, an answer's)
    without naming a type that is not text: ``value.ofType(Quantity)`` and
    ``valueQuantity.value`` are numbers, ``extension(...).value`` may be a name typed in."""
    for found in _VALUE.finditer(path):
        after = _TYPED_AFTER.match(path, found.end())
        if after is not None and after.group(1).lower() not in _TEXT_TYPES:
            continue
        before = _TYPED_BEFORE.search(path[: found.start()])
        if before is not None:
            kind = (before.group(1) or before.group(2)).lower()
            if kind not in _TEXT_TYPES:
                continue
        return True
    return False


def _view_paths(value: Any) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _PATH_KEYS and isinstance(item, str):
                out.append(item)
            else:
                out.extend(_view_paths(item))
    elif isinstance(value, list):
        for item in value:
            out.extend(_view_paths(item))
    return out
