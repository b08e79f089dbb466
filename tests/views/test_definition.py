"""ViewDefinition checking and running, beyond the official suite: errors say what and where."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fhirhub.views.definition import parse_view
from fhirhub.views.errors import ViewError
from fhirhub.views.run import run_view

_KEYS = st.sampled_from(
    ["resource", "select", "column", "name", "path", "forEach", "forEachOrNull", "repeat",
     "unionAll", "where", "constant", "valueString", "collection", "type", "id", "given"]
)  # fmt: skip

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(["id", "name", "given", "name.given", "family", "'a'", "%rowIndex", "a"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


def view(*select: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "ViewDefinition",
        "resource": "Patient",
        "select": list(select),
        **extra,
    }


def col(name: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": path, **extra}


def error_of(data: Any) -> ViewError:
    with pytest.raises(ViewError) as caught:
        parse_view(data)
    return caught.value


@pytest.mark.parametrize(
    ("data", "where", "needle"),
    [
        ([], "ViewDefinition", "JSON object"),
        ({"resource": "Patient"}, "ViewDefinition.select", "non-empty"),
        (
            {"resource": "Patinet", "select": [{"column": [col("id", "id")]}]},
            "ViewDefinition.resource",
            "not a FHIR R4 resource type",
        ),
        (
            view({"column": [col("id", "id.frobnicate()")]}),
            "ViewDefinition.select[0].column[0].path",
            "unknown function frobnicate()",
        ),
        (
            view({"column": [col("id", "id")]}, {"column": [col("id", "id")]}),
            "ViewDefinition.select",
            "'id' is used twice",
        ),
        (
            view({"forEach": "name", "repeat": ["item"], "column": [col("a", "id")]}),
            "ViewDefinition.select[0]",
            "only one of forEach, repeat",
        ),
        (
            view(
                {"column": [col("a", "%x")]},
                constant=[{"name": "x", "valueString": "a", "valueInteger": 1}],
            ),
            "ViewDefinition.constant[0]",
            "exactly one value[x]",
        ),
        (
            view({"column": [col("a", "id", collection="yes")]}),
            "ViewDefinition.select[0].column[0].collection",
            "true or false",
        ),
        (view({"column": [col("1a", "id")]}), "ViewDefinition.select[0].column[0].name", "name"),
        (view({"column": []}), "ViewDefinition.select[0]", "needs a column"),
        (
            view({"column": [col("a", "id")]}, where=[{"path": 3}]),
            "ViewDefinition.where[0].path",
            "FHIRPath string",
        ),
        (
            view({"unionAll": [{"column": [col("a", "id")]}, {"column": [col("b", "id")]}]}),
            "ViewDefinition.select[0].unionAll[1]",
            "same columns",
        ),
    ],
)
def test_a_bad_view_is_a_view_error_located_in_the_definition(
    data: Any, where: str, needle: str
) -> None:
    error = error_of(data)
    assert error.issues[0].expression == (where,)
    assert needle in error.summary


PATIENTS = [
    {"resourceType": "Patient", "id": "a", "name": [{"family": "X"}, {"family": "Y"}]},
    {"resourceType": "Patient", "id": "b"},
    {"resourceType": "Observation", "id": "o"},
]


def test_a_column_with_several_values_needs_collection_true() -> None:
    with pytest.raises(ViewError) as caught:
        list(run_view(view({"column": [col("family", "name.family")]}), PATIENTS))
    assert caught.value.issues[0].expression == ("ViewDefinition.select[0].column[0].path",)
    assert "collection: true" in caught.value.summary


def test_a_where_that_is_not_boolean_is_an_error_where_it_is() -> None:
    data = view({"column": [col("id", "id")]}, where=[{"path": "name.family.first()"}])
    with pytest.raises(ViewError) as caught:
        list(run_view(data, PATIENTS))
    assert caught.value.issues[0].expression == ("ViewDefinition.where[0].path",)


def test_rows_keep_the_column_order_and_skip_other_resource_types() -> None:
    data = view(
        {"forEachOrNull": "name", "column": [col("family", "family"), col("i", "%rowIndex")]},
        {"column": [col("id", "getResourceKey()"), col("n", "name.count()")]},
    )
    rows = list(run_view(data, PATIENTS))
    assert [list(r) for r in rows] == [["family", "i", "id", "n"]] * 3
    assert rows == [
        {"family": "X", "i": 0, "id": "Patient/a", "n": 2},
        {"family": "Y", "i": 1, "id": "Patient/a", "n": 2},
        {"family": None, "i": 0, "id": "Patient/b", "n": 0},
    ]


def test_repeat_walks_depth_first() -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {"linkId": "1", "item": [{"linkId": "1.1", "item": [{"linkId": "1.1.1"}]}]},
            {"linkId": "2", "answer": [{"item": [{"linkId": "2.a"}]}]},
        ],
    }
    data = {
        "resource": "QuestionnaireResponse",
        "select": [{"repeat": ["item", "answer.item"], "column": [col("link", "linkId")]}],
    }
    assert [r["link"] for r in run_view(data, [response])] == ["1", "1.1", "1.1.1", "2", "2.a"]


_VIEWS = st.fixed_dictionaries(
    {"resource": st.just("Patient"), "select": st.lists(st.dictionaries(_KEYS, _JSON), max_size=3)},
    optional={"where": _JSON, "constant": _JSON},
)


@given(_VIEWS, st.lists(st.dictionaries(_KEYS, _JSON, max_size=4), max_size=3))
@settings(max_examples=150, deadline=None)
def test_any_view_on_any_resource_gives_rows_or_a_view_error(
    data: dict[str, Any], resources: list[dict[str, Any]]
) -> None:
    """Malformed views and odd resources never escape as anything but a ViewError (a 400)."""
    patients = [{**r, "resourceType": "Patient"} for r in resources]
    try:
        rows = list(run_view(data, patients))
    except ViewError:
        event("refused")
        return
    event("rows")
    assert all(isinstance(row, dict) for row in rows)


def test_a_bad_view_fails_when_run_is_called_not_when_rows_are_read() -> None:
    with pytest.raises(ViewError):
        run_view(view({"column": [col("a", "id.nope()")]}), PATIENTS)
