"""The FHIRPath subset: parsing, typed errors and evaluation beyond the official suite."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirhub.views.errors import ViewError
from fhirhub.views.fhirpath import FUNCTIONS, parse
from fhirhub.views.fhirpath_ast import Binary, Call, Literal, Member
from fhirhub.views.fhirpath_eval import evaluate
from fhirhub.views.fhirpath_functions import FUNCTION_IMPLEMENTATIONS

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "active": True,
    "birthDate": "1970-06",
    "deceasedBoolean": False,
    "name": [
        {"use": "official", "family": "Wa Ode", "given": ["Siti", "Nur"]},
        {"family": "Ode", "given": ["Ana"]},
    ],
    "extension": [{"url": "http://x/ext", "valueCode": "F"}],
    "managingOrganization": {"reference": "https://fhir.example/fhir/Organization/o1/_history/3"},
}


def values(expression: str, resource: dict[str, Any] = PATIENT) -> list[Any]:
    return [item.value for item in evaluate(parse(expression), resource)]


def test_every_declared_function_is_implemented() -> None:
    assert set(FUNCTIONS) == set(FUNCTION_IMPLEMENTATIONS)


def test_parse_builds_a_tree_with_precedence() -> None:
    tree = parse("a + 2 * 3 = 7 and b")
    assert isinstance(tree, Binary) and tree.op == "and"
    assert isinstance(tree.left, Binary) and tree.left.op == "="
    addition = tree.left.left
    assert isinstance(addition, Binary) and addition.op == "+"
    assert addition.right == Binary("*", Literal(2, "integer"), Literal(3, "integer"))
    assert parse("name.first()") == Call(Member(None, "name"), "first")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name.shout()", "unknown function shout() at position 5"),
        ("name.where()", "where() takes 1 argument(s), got 0"),
        ("ofType('x')", "ofType() takes a type name"),
        ("%nope", "undefined constant %nope"),
        ("name.", "expected a name"),
        ("@@", "unexpected character '@'"),
        ("'open", "unexpected character"),
        ("a b", "expected an operator or the end"),
        ("", "the expression is empty"),
    ],
)
def test_bad_expressions_are_view_errors_that_say_what(text: str, needle: str) -> None:
    with pytest.raises(ViewError) as caught:
        parse(text)
    assert needle in caught.value.summary
    assert caught.value.status == 400


def test_an_unknown_function_is_reported_as_not_supported() -> None:
    with pytest.raises(ViewError) as caught:
        parse("name.soundex()")
    assert caught.value.issues[0].code == "not-supported"


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_the_parser_raises_only_view_errors(text: str) -> None:
    with contextlib.suppress(ViewError):
        parse(text)


_TOKENS = st.sampled_from(
    [
        "name", "given", "family", "birthDate", "active", "deceased", "extension", "id", "(", ")",
        "[", "]", ".", "0", "1", "2.5", "'a'", "true", "{}", "=", "!=", "<", ">=", "+", "-", "*",
        "/", "div", "mod", "&", "|", "and", "or", "xor", "implies", "is", "as", "in", "contains",
        "where(", "exists(", "first()", "join(", "ofType(", "not()", "lowBoundary()", "count()",
        "getReferenceKey()", "substring(", "iif(", "$this", "%rowIndex", "@2020-01", ",", "string",
    ]
)  # fmt: skip


@given(st.lists(_TOKENS, max_size=12))
@settings(max_examples=400, deadline=None)
def test_parsing_and_evaluating_token_soup_raises_only_view_errors(tokens: list[str]) -> None:
    with contextlib.suppress(ViewError):
        evaluate(parse(" ".join(tokens)), PATIENT)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("name.given", ["Siti", "Nur", "Ana"]),
        ("name[1].family", ["Ode"]),
        ("name[5].family", []),
        ("Patient.name.family.first()", ["Wa Ode"]),
        ("name.where(use = 'official').given.join(' ')", ["Siti Nur"]),
        ("name.given.count()", [3]),
        ("name.exists(family = 'Ode')", [True]),
        ("telecom.empty()", [True]),
        ("telecom.value = 'x'", []),  # empty operand: empty result
        ("telecom.value = 'x' or true", [True]),  # three-valued or
        ("telecom.value = 'x' and false", [False]),
        ("(telecom.value = 'x').not()", []),
        ("deceased.ofType(boolean)", [False]),
        ("deceased.ofType(string)", []),
        ("deceased is boolean", [True]),
        ("extension('http://x/ext').value.ofType(code)", ["F"]),
        ("extension('http://x/ext').value.ofType(string)", ["F"]),  # code specialises string
        ("managingOrganization.getReferenceKey()", ["Organization/o1"]),
        ("managingOrganization.getReferenceKey(Organization)", ["Organization/o1"]),
        ("managingOrganization.getReferenceKey(Patient)", []),
        ("getResourceKey()", ["Patient/p1"]),
        ("7 div 2", [3]),
        ("7 mod 2", [1]),
        ("7 / 2", [Decimal("3.5")]),
        ("1 / 0", []),
        ("-(2 + 3)", [-5]),
        ("'a' & {} & 'b'", ["ab"]),
        ("(1 | 2 | 1).count()", [2]),
        ("2 in (1 | 2)", [True]),
        ("'Baubau'.substring(0, 4)", ["Baub"]),
        ("'Baubau'.upper().startsWith('BAU')", [True]),
        ("birthDate = @1970-06", [True]),
        ("birthDate = @1970-06-01", []),  # different precision: unknown
        ("birthDate < @1971-01", [True]),
        ("iif(active, 'yes', 'no')", ["yes"]),
        ("name.family.first().matches('^Wa [A-Z]')", [True]),
    ],
)
def test_evaluation(expression: str, expected: list[Any]) -> None:
    assert values(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("@2024.lowBoundary()", ["2024-01-01"]),
        ("@2024.highBoundary()", ["2024-12-31"]),
        ("@2024-02.highBoundary()", ["2024-02-29"]),
        ("@2023-02.highBoundary()", ["2023-02-28"]),
        ("@2024-02-03T10:30+08:00.lowBoundary()", ["2024-02-03T10:30:00.000+08:00"]),
        ("@2024-02-03T10:30+08:00.highBoundary()", ["2024-02-03T10:30:59.999+08:00"]),
        ("@T10.highBoundary()", ["10:59:59.999"]),
        ("2.50.lowBoundary()", [Decimal("2.495")]),
        ("2.50.highBoundary()", [Decimal("2.505")]),
        ("1.587.lowBoundary(2)", [Decimal("1.58")]),
        ("'abc'.lowBoundary()", []),
    ],
)
def test_boundaries(expression: str, expected: list[Any]) -> None:
    assert values(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "name.given.single()",
        "name.given < 'x'",
        "name.family + 1",
        "name.first() > 'a'",
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!'.matches('^(a+)+$')",
    ],
)
def test_runtime_misuse_is_a_view_error(expression: str) -> None:
    with pytest.raises(ViewError):
        values(expression)


@pytest.mark.parametrize(
    "text",
    ["(" * 500 + "1" + ")" * 500, "-" * 900 + "1", ".".join(["a"] * 300), "a" * 20_000],
)
def test_deep_or_huge_expressions_are_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ViewError):
        parse(text)
