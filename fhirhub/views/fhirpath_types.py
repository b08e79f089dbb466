"""What the FHIRPath evaluator passes around: items with their FHIR type, and the evaluation frame.

A collection is a list of :class:`Item`. ``Item.type`` is the FHIR type when it is known from the
JSON (a choice element ``valueQuantity`` is a ``Quantity``; a constant ``valueDate`` a ``date``;
a resource its ``resourceType``) and None when only the JSON value itself tells.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from fhirhub.views.fhirpath_ast import Node

PRIMITIVE_TYPES = [
    "boolean",
    "integer",
    "integer64",
    "string",
    "decimal",
    "uri",
    "url",
    "canonical",
    "base64Binary",
    "instant",
    "date",
    "dateTime",
    "time",
    "code",
    "oid",
    "id",
    "markdown",
    "unsignedInt",
    "positiveInt",
    "uuid",
    "xhtml",
]
COMPLEX_TYPES = [
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "CodeableConcept",
    "CodeableReference",
    "Coding",
    "ContactPoint",
    "Count",
    "Distance",
    "Duration",
    "HumanName",
    "Identifier",
    "Money",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "RatioRange",
    "Reference",
    "SampledData",
    "Signature",
    "Timing",
    "ContactDetail",
    "Contributor",
    "DataRequirement",
    "Expression",
    "ParameterDefinition",
    "RelatedArtifact",
    "TriggerDefinition",
    "UsageContext",
    "Dosage",
    "Meta",
    "Availability",
    "ExtendedContactDetail",
    "VirtualServiceDetail",
    "MonetaryComponent",
    "Extension",
    "Narrative",
]
# the suffix of a choice element's JSON key -> the FHIR type it carries
CHOICE_SUFFIXES = {t[0].upper() + t[1:]: t for t in PRIMITIVE_TYPES + COMPLEX_TYPES}
# a FHIR primitive type -> the type it specialises
SUPERTYPES = {
    "code": "string",
    "id": "string",
    "markdown": "string",
    "url": "uri",
    "canonical": "uri",
    "oid": "uri",
    "uuid": "uri",
    "unsignedInt": "integer",
    "positiveInt": "integer",
    "Age": "Quantity",
    "Count": "Quantity",
    "Distance": "Quantity",
    "Duration": "Quantity",
    "Money": "Quantity",
}
STRING_TYPES = frozenset(
    {
        "string",
        "code",
        "id",
        "markdown",
        "uri",
        "url",
        "canonical",
        "oid",
        "uuid",
        "base64Binary",
        "xhtml",
    }
)
DATE_PATTERN = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
DATETIME_PATTERN = re.compile(
    r"\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?"
)
TIME_PATTERN = re.compile(r"\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?")


class Item(NamedTuple):
    value: Any  # dict, str, bool, int, float or Decimal
    type: str | None = None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def to_decimal(value: Any) -> Decimal:
    """A JSON number as a Decimal with the digits it was written with (``1.0`` keeps its 0)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(int(value))


def type_of(item: Item) -> str | None:
    """The item's FHIR type, inferred from the JSON value when the element did not say."""
    if item.type is not None:
        return item.type
    value = item.value
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping) and isinstance(value.get("resourceType"), str):
        return str(value["resourceType"])
    return None


def temporal_kind(item: Item) -> str | None:
    """``date``, ``dateTime``, ``time`` (or ``instant``) when the item is one, else None."""
    kind = item.type
    if kind in ("date", "dateTime", "time", "instant"):
        return kind
    if kind is None and isinstance(item.value, str):
        if DATE_PATTERN.fullmatch(item.value):
            return "date"
        if DATETIME_PATTERN.fullmatch(item.value):
            return "dateTime"
    return None


@dataclass(frozen=True)
class Env:
    """What stays the same while one path is evaluated over one resource."""

    constants: Mapping[str, list[Item]]
    resource: Item
    row_index: int = 0


@dataclass(frozen=True)
class Frame:
    """Where an expression is evaluated: its input, ``$this`` and ``$index``."""

    focus: list[Item]
    this: list[Item]
    index: int | None = None


class Evaluator(Protocol):
    env: Env

    def eval(self, node: Node, frame: Frame) -> list[Item]: ...
