"""What an analyst receives: FHIR JSON without the direct identifiers of a person.

An analyst's scopes leave out ``Patient`` (and ``Coverage``, ``Claim``), but the resources it
may read can still carry a person's identity: a reference's ``display`` (the patient's name) or
``identifier`` (a NIK), a contained Patient, a narrative, a Practitioner's name and phone. Every
response to an analyst passes through :func:`scrub`, which removes, at any depth:

- human names (``name`` holding HumanNames), ``telecom``, ``photo``;
- the street part of an ``address`` (``line``, ``text``; district, city and province stay);
- the narrative (``text`` with a ``div``);
- a reference's ``display`` and ``identifier``;
- identifiers in the person-identifier systems (NIK, the mother's NIK, IHS number, BPJS card,
  medical record numbers).

Free text a clinician typed (``note``, ``valueString``, a QuestionnaireResponse's answers) is not
judged here.
"""

from __future__ import annotations

from typing import Any

from fhirhub.model import systems

PERSON_SYSTEMS = frozenset({systems.NIK, systems.NIK_IBU, systems.IHS_NUMBER, systems.BPJS_CARD})
_HUMAN_NAME_KEYS = frozenset({"family", "given", "prefix", "suffix", "text", "use", "period"})
_DROPPED = ("telecom", "photo")


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


def scrub(value: Any) -> Any:
    """``value`` with the direct identifiers removed (a new structure; ``value`` is kept)."""
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    is_reference = isinstance(value.get("reference"), str)
    for key, item in value.items():
        if key in _DROPPED:
            continue
        if key == "name" and _is_human_name(item):
            continue
        if key == "text" and isinstance(item, dict) and "div" in item:
            continue
        if is_reference and key in ("display", "identifier"):
            continue
        if key == "identifier":
            if _is_person_identifier(item):
                continue
            if isinstance(item, list):
                item = [i for i in item if not _is_person_identifier(i)]
        if key == "address":
            item = _address(item)
        out[key] = scrub(item)
    return out


def _address(value: Any) -> Any:
    if isinstance(value, list):
        return [_address(v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("line", "text")}
    return value
