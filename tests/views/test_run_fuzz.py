"""Whatever is sent to ``$viewdefinition-run``, the answer is never a 5xx: Hypothesis makes
Parameters bodies from the operation's parameter names with values of every JSON shape, and
views with paths from a small FHIRPath vocabulary (valid or not)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fhirhub.api.app import create_app
from fhirhub.config import Settings

RUN = "/fhir/ViewDefinition/$viewdefinition-run"
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_tokens = st.sampled_from(
    [
        "name",
        "given",
        ".",
        "(",
        ")",
        "first()",
        "where(",
        "=",
        "'x'",
        "%rowIndex",
        "$this",
        "ofType(",
        "Quantity",
        "extension(",
        "getReferenceKey(",
        "[0]",
        "exists()",
        "join(',')",
        "and",
        "|",
        "+",
        "1.5",
        "@2020",
        "%c",
        "lowBoundary()",
        "frobnicate()",
        " ",
    ]
)
_path = st.lists(_tokens, min_size=1, max_size=6).map("".join)
_column = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "c", "1x"]), "path": _path | _json},
    optional={"collection": st.booleans() | _json, "type": st.sampled_from(["string", "integer"])},
)
_select: Any = st.deferred(
    lambda: st.fixed_dictionaries(
        {},
        optional={
            "column": st.lists(_column, max_size=3),
            "forEach": _path,
            "forEachOrNull": _path,
            "repeat": st.lists(_path, max_size=2),
            "select": st.lists(_select, max_size=2),
            "unionAll": st.lists(_select, max_size=2),
        },
    )
)
_view = st.fixed_dictionaries(
    {
        "resource": st.sampled_from(["Patient", "Observation", "Nope"]),
        "select": st.lists(_select, max_size=2),
    },
    optional={
        "constant": st.lists(
            st.fixed_dictionaries(
                {"name": st.just("c")}, optional={"valueString": _json, "valueDate": _json}
            ),
            max_size=2,
        ),
        "where": st.lists(st.fixed_dictionaries({"path": _path}), max_size=2),
    },
)
_valid_path = st.sampled_from(
    [
        "id",
        "name.given",
        "name.first().given.first()",
        "gender",
        "given.join(',')",
        "name.where(use = 'x').exists()",
        "%rowIndex",
        "$this",
        "name[0].family",
    ]
)
_valid_view = st.fixed_dictionaries(
    {
        "resource": st.just("Patient"),
        "select": st.lists(
            st.fixed_dictionaries(
                {"column": st.tuples(_valid_path).map(lambda p: [{"name": "v", "path": p[0]}])},
                optional={"forEachOrNull": st.sampled_from(["name", "name.given"])},
            ),
            min_size=1,
            max_size=1,
        ),
    }
)
_parameter = st.one_of(
    st.fixed_dictionaries({"name": st.just("viewResource"), "resource": _valid_view}),
    st.fixed_dictionaries({"name": st.just("viewResource"), "resource": _view | _json}),
    st.fixed_dictionaries(
        {"name": st.sampled_from(["viewReference", "patient", "_since", "_format", "_limit"])},
        optional={
            "valueString": _json,
            "valueCode": _json,
            "valueInteger": _json,
            "valueReference": _json,
            "valueInstant": _json,
        },
    ),
    st.fixed_dictionaries({"name": st.just("resource"), "resource": _json}),
    st.fixed_dictionaries(
        {
            "name": st.just("resource"),
            "resource": st.fixed_dictionaries(
                {"resourceType": st.just("Patient")},
                optional={"name": _json, "id": _json, "gender": _json},
            ),
        }
    ),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Any) -> Iterator[TestClient]:
    import shutil

    path = tmp_path_factory.mktemp("fuzz") / "db.sqlite3"
    shutil.copy(sqlite_template, path)
    app = create_app(Settings(database_url=f"sqlite:///{path}"), run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.put(
            "/fhir/Patient/p1",
            json={"resourceType": "Patient", "id": "p1", "name": [{"given": ["Ani"]}]},
            headers={"content-type": "application/fhir+json"},
        )
        yield c
    app.state.database.engine.dispose()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=st.lists(_parameter, max_size=4), body=_json, shape=st.integers(0, 3))
def test_never_a_5xx(client: TestClient, params: list[Any], body: Any, shape: int) -> None:
    sent: Any = {"resourceType": "Parameters", "parameter": params} if shape else body
    if shape == 3 and params:
        sent["parameter"] = [{"name": "viewResource", "resource": params[0].get("resource", {})}]
    response = client.post(RUN, json=sent, headers={"content-type": "application/fhir+json"})
    assert response.status_code < 500, (sent, response.text)
    event(f"status {response.status_code}")
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"
