"""The FHIRPath syntax tree: the parser builds it; the evaluator and the SQL compiler walk it.

Nodes are frozen dataclasses; ``pos`` is the character offset in the source text (for errors)
and takes no part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Node:
    pos: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True)
class Literal(Node):
    """A literal: ``value`` is str, bool, int or Decimal; ``type`` its FHIRPath type name."""

    value: str | bool | int | Decimal
    type: str  # "string", "boolean", "integer", "decimal", "date", "dateTime", "time"


@dataclass(frozen=True)
class EmptyLiteral(Node):
    """``{}``"""


@dataclass(frozen=True)
class Constant(Node):
    """``%name``: a ViewDefinition constant or an environment variable such as ``%rowIndex``."""

    name: str


@dataclass(frozen=True)
class Variable(Node):
    """``$this``, ``$index`` or ``$total``."""

    name: str


@dataclass(frozen=True)
class Member(Node):
    """``source.name``; ``source`` None means the current focus (a path's first step)."""

    source: Node | None
    name: str


@dataclass(frozen=True)
class Call(Node):
    """``source.name(args)``; ``source`` None means the current focus."""

    source: Node | None
    name: str
    args: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Indexer(Node):
    """``source[index]``"""

    source: Node
    index: Node


@dataclass(frozen=True)
class Unary(Node):
    """``-x`` or ``+x``"""

    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    """An infix operator: arithmetic, comparison, equality, ``|``, ``and``/``or``/..."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class TypeOp(Node):
    """``operand is Type`` or ``operand as Type``."""

    op: str
    operand: Node
    type_name: str


def type_name_of(node: Node) -> str | None:
    """The type a type-specifier argument names (``Patient``, ``FHIR.string``), or None."""
    if isinstance(node, Member):
        if node.source is None:
            return node.name
        if (
            isinstance(node.source, Member)
            and node.source.source is None
            and node.source.name in ("FHIR", "System")
        ):
            return node.name
    return None
