"""The FHIRPath subset of SQL on FHIR v2, parsed into a syntax tree.

https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html#required-fhirpath-expressionsfunctions
and the FHIRPath grammar (https://hl7.org/fhirpath/N1/grammar.html). :func:`parse` returns a
:mod:`~fhirhub.views.fhirpath_ast` tree and checks every function against :data:`FUNCTIONS` and
every ``%constant`` against the names given, so an unknown function is a :class:`ViewError` before
any resource is read. Nothing here raises anything but ViewError.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from fhirhub.views.errors import ViewError
from fhirhub.views.fhirpath_ast import (
    Binary,
    Call,
    Constant,
    EmptyLiteral,
    Indexer,
    Literal,
    Member,
    Node,
    TypeOp,
    Unary,
    Variable,
    type_name_of,
)

# name -> (fewest, most) arguments
FUNCTIONS: dict[str, tuple[int, int]] = {
    "where": (1, 1),
    "select": (1, 1),
    "exists": (0, 1),
    "all": (1, 1),
    "empty": (0, 0),
    "first": (0, 0),
    "last": (0, 0),
    "tail": (0, 0),
    "skip": (1, 1),
    "take": (1, 1),
    "single": (0, 0),
    "count": (0, 0),
    "distinct": (0, 0),
    "not": (0, 0),
    "allTrue": (0, 0),
    "anyTrue": (0, 0),
    "allFalse": (0, 0),
    "anyFalse": (0, 0),
    "iif": (2, 3),
    "join": (0, 1),
    "ofType": (1, 1),
    "is": (1, 1),
    "as": (1, 1),
    "extension": (1, 1),
    "getResourceKey": (0, 0),
    "getReferenceKey": (0, 1),
    "lowBoundary": (0, 1),
    "highBoundary": (0, 1),
    "hasValue": (0, 0),
    "toString": (0, 0),
    "toInteger": (0, 0),
    "toDecimal": (0, 0),
    "startsWith": (1, 1),
    "endsWith": (1, 1),
    "contains": (1, 1),
    "substring": (1, 2),
    "indexOf": (1, 1),
    "lower": (0, 0),
    "upper": (0, 0),
    "length": (0, 0),
    "trim": (0, 0),
    "replace": (2, 2),
    "matches": (1, 1),
    "split": (1, 1),
}
# functions whose (first) argument is a type name, not an expression
TYPE_ARGUMENT_FUNCTIONS = frozenset({"ofType", "is", "as", "getReferenceKey"})
# deeper expressions are refused (the evaluator and the SQL compiler recurse over the tree)
MAX_DEPTH = 64
MAX_LENGTH = 10_000
# environment variables every view may use besides its own constants
BUILTIN_CONSTANTS = frozenset({"rowIndex", "resource", "rootResource", "context"})

_BINARY_PRECEDENCE = {
    "implies": 1,
    "or": 2,
    "xor": 2,
    "and": 3,
    "in": 4,
    "contains": 4,
    "=": 5,
    "~": 5,
    "!=": 5,
    "!~": 5,
    "<": 6,
    "<=": 6,
    ">": 6,
    ">=": 6,
    "|": 7,
    "is": 8,
    "as": 8,
    "+": 9,
    "-": 9,
    "&": 9,
    "*": 10,
    "/": 10,
    "div": 10,
    "mod": 10,
}
_WORD_OPERATORS = frozenset(
    {"implies", "or", "xor", "and", "in", "contains", "is", "as", "div", "mod"}
)

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<datetime>@(?:T\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?
       |\d{4}(?:-\d{2}(?:-\d{2})?)?
        (?:T(?:\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)?(?:Z|[+-]\d{2}:\d{2})?)?))
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<delimited>`(?:[^`\\]|\\.)*`)
  | (?P<identifier>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<variable>\$(?:this|index|total))
  | (?P<op><=|>=|!=|!~|[-+*/&|=~<>()\[\]{},.%])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {
    "'": "'",
    '"': '"',
    "`": "`",
    "\\": "\\",
    "/": "/",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


@dataclass(frozen=True)
class Token:
    kind: str  # ws is dropped; datetime, number, string, identifier, variable, op, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ViewError(f"FHIRPath: unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unescape(body: str, pos: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise ViewError(f"FHIRPath: invalid escape '\\{nxt}' in the string at position {pos}")
    return "".join(out)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def descend(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ViewError(f"FHIRPath: the expression nests deeper than {MAX_DEPTH} levels")

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def error(self, token: Token, what: str) -> ViewError:
        found = repr(token.text) if token.kind != "end" else "the end"
        return ViewError(f"FHIRPath: {what}, found {found} at position {token.pos}")

    def expect(self, text: str) -> Token:
        token = self.next()
        if token.text != text or token.kind not in ("op",):
            raise self.error(token, f"expected {text!r}")
        return token

    def parse(self) -> Node:
        node = self.expression(0)
        if self.peek().kind != "end":
            raise self.error(self.peek(), "expected an operator or the end")
        return node

    def binary_operator(self) -> str | None:
        token = self.peek()
        if token.kind == "op" and token.text in _BINARY_PRECEDENCE:
            return token.text
        if token.kind == "identifier" and token.text in _WORD_OPERATORS:
            return token.text
        return None

    def expression(self, min_precedence: int) -> Node:
        self.descend()
        left = self.unary()
        while (op := self.binary_operator()) is not None:
            precedence = _BINARY_PRECEDENCE[op]
            if precedence < min_precedence:
                break
            token = self.next()
            if op in ("is", "as"):
                left = TypeOp(op, left, self.type_specifier(), pos=token.pos)
            else:
                right = self.expression(precedence + 1)
                left = Binary(op, left, right, pos=token.pos)
        self.depth -= 1
        return left

    def type_specifier(self) -> str:
        token = self.next()
        if token.kind not in ("identifier", "delimited"):
            raise self.error(token, "expected a type name")
        name = token.text.strip("`")
        if name in ("FHIR", "System") and self.peek().text == ".":
            self.next()
            return self.type_specifier()
        return name

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.text in ("+", "-"):
            self.next()
            self.descend()
            operand = self.unary()
            self.depth -= 1
            return Unary(token.text, operand, pos=token.pos)
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token.kind == "op" and token.text == ".":
                self.next()
                node = self.invocation(node)
            elif token.kind == "op" and token.text == "[":
                self.next()
                index = self.expression(0)
                self.expect("]")
                node = Indexer(node, index, pos=token.pos)
            else:
                return node

    def invocation(self, source: Node | None) -> Node:
        token = self.next()
        if token.kind == "variable" and source is None:
            return Variable(token.text[1:], pos=token.pos)
        if token.kind not in ("identifier", "delimited"):
            raise self.error(token, "expected a name")
        name = _unescape(token.text[1:-1], token.pos) if token.kind == "delimited" else token.text
        if token.kind == "identifier" and self.peek().kind == "op" and self.peek().text == "(":
            self.next()
            args: list[Node] = []
            if not (self.peek().kind == "op" and self.peek().text == ")"):
                args.append(self.expression(0))
                while self.peek().kind == "op" and self.peek().text == ",":
                    self.next()
                    args.append(self.expression(0))
            self.expect(")")
            return Call(source, name, tuple(args), pos=token.pos)
        return Member(source, name, pos=token.pos)

    def term(self) -> Node:
        token = self.peek()
        if token.kind == "number":
            self.next()
            if "." in token.text:
                return Literal(Decimal(token.text), "decimal", pos=token.pos)
            return Literal(int(token.text), "integer", pos=token.pos)
        if token.kind == "string":
            self.next()
            return Literal(_unescape(token.text[1:-1], token.pos), "string", pos=token.pos)
        if token.kind == "datetime":
            self.next()
            body = token.text[1:]
            if body.startswith("T"):
                return Literal(body[1:], "time", pos=token.pos)
            kind = "dateTime" if "T" in body else "date"
            return Literal(body.rstrip("T"), kind, pos=token.pos)
        if token.kind == "identifier" and token.text in ("true", "false"):
            self.next()
            return Literal(token.text == "true", "boolean", pos=token.pos)
        if token.kind == "op" and token.text == "(":
            self.next()
            inner = self.expression(0)
            self.expect(")")
            return inner
        if token.kind == "op" and token.text == "{":
            self.next()
            self.expect("}")
            return EmptyLiteral(pos=token.pos)
        if token.kind == "op" and token.text == "%":
            self.next()
            name_token = self.next()
            if name_token.kind == "identifier":
                name = name_token.text
            elif name_token.kind in ("delimited", "string"):
                name = _unescape(name_token.text[1:-1], name_token.pos)
            else:
                raise self.error(name_token, "expected a constant name after '%'")
            return Constant(name, pos=token.pos)
        return self.invocation(None)


def parse(text: str, constants: Iterable[str] = ()) -> Node:
    """Parse ``text`` and check its functions and ``%constants`` (``constants`` = names defined)."""
    if not isinstance(text, str):
        raise ViewError("FHIRPath: the expression must be a string")
    if not text.strip():
        raise ViewError("FHIRPath: the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ViewError(f"FHIRPath: the expression is longer than {MAX_LENGTH} characters")
    tree = _Parser(text).parse()
    if _depth(tree) > MAX_DEPTH * 4:
        raise ViewError(f"FHIRPath: the expression has more than {MAX_DEPTH * 4} steps in a row")
    check(tree, frozenset(constants) | BUILTIN_CONSTANTS)
    return tree


def check(node: Node, constants: frozenset[str]) -> None:
    """Raise ViewError for an unknown function, a wrong argument count or an undefined constant."""
    for sub in walk(node):
        if isinstance(sub, Constant) and sub.name not in constants:
            raise ViewError(f"FHIRPath: undefined constant %{sub.name} at position {sub.pos}")
        if isinstance(sub, Call):
            if sub.name not in FUNCTIONS:
                raise ViewError(
                    f"FHIRPath: unknown function {sub.name}() at position {sub.pos}",
                    code="not-supported",
                )
            least, most = FUNCTIONS[sub.name]
            if not least <= len(sub.args) <= most:
                expected = str(least) if least == most else f"{least} to {most}"
                raise ViewError(
                    f"FHIRPath: {sub.name}() takes {expected} argument(s), "
                    f"got {len(sub.args)} at position {sub.pos}"
                )
            if (
                sub.name in TYPE_ARGUMENT_FUNCTIONS
                and sub.args
                and type_name_of(sub.args[0]) is None
            ):
                raise ViewError(f"FHIRPath: {sub.name}() takes a type name at position {sub.pos}")


def _children(node: Node) -> list[Node]:
    if isinstance(node, Member):
        return [node.source] if node.source is not None else []
    if isinstance(node, Call):
        return ([node.source] if node.source is not None else []) + list(node.args)
    if isinstance(node, Indexer):
        return [node.source, node.index]
    if isinstance(node, Unary | TypeOp):
        return [node.operand]
    if isinstance(node, Binary):
        return [node.left, node.right]
    return []


def _depth(tree: Node) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    return deepest


def walk(node: Node) -> Iterable[Node]:
    """Every node of the tree, parents before children (type-name arguments are not visited)."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, Member) and current.source is not None:
            stack.append(current.source)
        elif isinstance(current, Call):
            if current.source is not None:
                stack.append(current.source)
            if current.name not in TYPE_ARGUMENT_FUNCTIONS:
                stack.extend(current.args)
        elif isinstance(current, Indexer):
            stack.extend((current.source, current.index))
        elif isinstance(current, Unary):
            stack.append(current.operand)
        elif isinstance(current, Binary):
            stack.extend((current.left, current.right))
        elif isinstance(current, TypeOp):
            stack.append(current.operand)
