"""``$viewdefinition-run`` beyond the suite: formats, _limit, patient, _since, a catalogued view
by id, streaming a view the compiler refuses, and bad input (4xx OperationOutcomes, never 500)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhirhub.api.app import create_app
from fhirhub.config import Settings
from fhirhub.model.instant import now_us, to_instant

FHIR_JSON = {"content-type": "application/fhir+json"}
RUN = "/fhir/ViewDefinition/$viewdefinition-run"
VIEW = {
    "resourceType": "ViewDefinition",
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "id", "path": "id"},
                {"name": "gender", "path": "gender"},
                {"name": "given", "path": "name.given", "collection": True},
            ]
        }
    ],
}


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url), run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.database.engine.dispose()


def _patient(client: TestClient, pid: str, gender: str, given: list[str]) -> None:
    body = {"resourceType": "Patient", "id": pid, "gender": gender, "name": [{"given": given}]}
    response = client.put(f"/fhir/Patient/{pid}", json=body, headers=FHIR_JSON)
    assert response.status_code in (200, 201), response.text


def _run(client: TestClient, *params: dict[str, Any], query: str = "") -> Any:
    body = {"resourceType": "Parameters", "parameter": list(params)}
    return client.post(RUN + query, json=body, headers=FHIR_JSON)


def _view(view: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "viewResource", "resource": view or VIEW}


@pytest.fixture
def three(client: TestClient) -> TestClient:
    _patient(client, "a", "female", ["Wa Ode", "Sitti"])
    _patient(client, "b", "male", ["La Ode"])
    _patient(client, "c", "female", ["Hapus"])
    client.delete("/fhir/Patient/c")
    return client


def test_json_rows_of_current_resources_only(three: TestClient) -> None:
    _patient(three, "b", "male", ["La Ode", "Muh."])  # a second version: only it counts
    response = _run(three, _view())
    assert response.status_code == 200
    assert sorted(response.json(), key=lambda r: r["id"]) == [
        {"id": "a", "gender": "female", "given": ["Wa Ode", "Sitti"]},
        {"id": "b", "gender": "male", "given": ["La Ode", "Muh."]},
    ]


def test_ndjson_and_csv(three: TestClient) -> None:
    ndjson = _run(three, _view(), {"name": "_format", "valueCode": "ndjson"})
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in ndjson.text.splitlines()]
    assert {r["id"] for r in lines} == {"a", "b"}
    as_csv = _run(three, _view(), query="?_format=csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(as_csv.text)))
    assert table[0] == ["id", "gender", "given"]
    assert sorted(table[1:]) == [
        ["a", "female", '["Wa Ode","Sitti"]'],
        ["b", "male", '["La Ode"]'],
    ]


def test_limit_patient_and_since(three: TestClient) -> None:
    limited = _run(three, _view(), {"name": "_limit", "valueInteger": 1})
    assert len(limited.json()) == 1
    one = _run(three, _view(), {"name": "patient", "valueReference": {"reference": "Patient/b"}})
    assert [r["id"] for r in one.json()] == ["b"]
    later = to_instant(now_us() + 1)
    _patient(three, "d", "male", ["Baru"])
    since = _run(three, _view(), {"name": "_since", "valueInstant": later})
    assert [r["id"] for r in since.json()] == ["d"]


def test_patient_compartment_of_other_types(client: TestClient) -> None:
    _patient(client, "p1", "female", ["Ani"])
    _patient(client, "p2", "female", ["Ina"])
    for oid, pid in (("o1", "p1"), ("o2", "p2"), ("o3", "p1")):
        obs = {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"text": "BB"},
            "subject": {"reference": f"Patient/{pid}"},
        }
        assert client.put(f"/fhir/Observation/{oid}", json=obs, headers=FHIR_JSON).is_success
    view = {
        "resource": "Observation",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "id"},
                    {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                ]
            }
        ],
    }
    rows = _run(client, _view(view), {"name": "patient", "valueString": "p1"}).json()
    assert sorted(rows, key=lambda r: r["id"]) == [
        {"id": "o1", "patient": "Patient/p1"},
        {"id": "o3", "patient": "Patient/p1"},
    ]


def test_patient_compartment_through_an_alias(client: TestClient) -> None:
    """Encounter's compartment link is ``patient``, an alias of ``subject``'s Patient rows (it
    has no rows of its own): the scope reads the rows it names."""
    _patient(client, "p1", "female", ["Ani"])
    _patient(client, "p2", "female", ["Ina"])
    for eid, pid in (("e1", "p1"), ("e2", "p2")):
        enc = {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"},
        }
        assert client.put(f"/fhir/Encounter/{eid}", json=enc, headers=FHIR_JSON).is_success
    view = {"resource": "Encounter", "select": [{"column": [{"name": "id", "path": "id"}]}]}
    rows = _run(client, _view(view), {"name": "patient", "valueString": "p2"}).json()
    assert rows == [{"id": "e2"}]


def test_inline_resources_only(three: TestClient) -> None:
    inline = {"resourceType": "Patient", "id": "x", "gender": "other"}
    rows = _run(three, _view(), {"name": "resource", "resource": inline}).json()
    assert rows == [{"id": "x", "gender": "other", "given": []}]


def test_a_view_the_compiler_refuses_still_streams(three: TestClient) -> None:
    view = {
        "resource": "Patient",
        "select": [
            {"column": [{"name": "id", "path": "id"}, {"name": "low", "path": "id.length()"}]}
        ],
    }
    rows = _run(three, _view(view)).json()
    assert sorted(rows, key=lambda r: r["id"]) == [{"id": "a", "low": 1}, {"id": "b", "low": 1}]


def test_a_catalogued_view_by_id(three: TestClient) -> None:
    response = three.get("/fhir/ViewDefinition/patient-demographics/$viewdefinition-run")
    assert response.status_code == 200, response.text
    assert {r["id"] for r in response.json()} == {"Patient/a", "Patient/b"}
    by_reference = _run(
        three,
        {
            "name": "viewReference",
            "valueReference": {"reference": "ViewDefinition/patient-demographics"},
        },
    )
    assert by_reference.status_code == 200
    missing = three.get("/fhir/ViewDefinition/nope/$viewdefinition-run")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert Path(three.app.state.settings.views_dir).is_dir()  # type: ignore[attr-defined]


def _outcome(response: Any, status: int, expression: str) -> str:
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [expression]
    return str(outcome["issue"][0]["diagnostics"])


def test_unknown_function_is_400_saying_where(client: TestClient) -> None:
    view = {
        "resource": "Patient",
        "select": [{"column": [{"name": "x", "path": "name.frobnicate()"}]}],
    }
    text = _outcome(_run(client, _view(view)), 400, "ViewDefinition.select[0].column[0].path")
    assert "frobnicate" in text


@pytest.mark.parametrize(
    ("view", "expression"),
    [
        ({"resource": "Patient"}, "ViewDefinition.select"),
        (
            {"resource": "Nope", "select": [{"column": [{"name": "a", "path": "id"}]}]},
            "ViewDefinition.resource",
        ),
        (
            {"resource": "Patient", "select": [{"column": [{"name": "1a", "path": "id"}]}]},
            "ViewDefinition.select[0].column[0].name",
        ),
        (
            {"resource": "Patient", "select": [{"column": [{"name": "a", "path": "id ="}]}]},
            "ViewDefinition.select[0].column[0].path",
        ),
        (
            {"resource": "Patient", "select": [{"forEach": 3, "column": []}]},
            "ViewDefinition.select[0].forEach",
        ),
        ("not a view", "ViewDefinition"),
    ],
)
def test_malformed_views_are_400(client: TestClient, view: Any, expression: str) -> None:
    _outcome(
        _run(
            client,
            _view(view) if isinstance(view, dict) else {"name": "viewResource", "resource": view},
        ),
        400,
        expression,
    )


def test_a_column_with_two_values_is_400(three: TestClient) -> None:
    view = {"resource": "Patient", "select": [{"column": [{"name": "g", "path": "name.given"}]}]}
    _outcome(_run(three, _view(view)), 400, "ViewDefinition.select[0].column[0].path")


@pytest.mark.parametrize(
    ("params", "query", "status"),
    [
        ([], "", 400),
        ([_view(), {"name": "_format", "valueCode": "xlsx"}], "", 400),
        ([_view(), {"name": "_limit", "valueInteger": 0}], "", 400),
        ([_view(), {"name": "_since", "valueInstant": "yesterday"}], "", 400),
        ([_view(), {"name": "patient", "valueString": "Patient/a b"}], "", 400),
        ([_view(), {"name": "wat", "valueString": "x"}], "", 400),
        ([_view()], "?_limit=-3", 400),
        ([_view(), _view()], "", 400),
        ([_view(), {"name": "resource", "resource": [1]}], "", 400),
    ],
)
def test_bad_parameters_are_4xx(
    client: TestClient, params: list[Any], query: str, status: int
) -> None:
    response = _run(client, *params, query=query)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_bad_bodies_are_4xx(client: TestClient) -> None:
    assert client.post(RUN, content=b"{", headers=FHIR_JSON).status_code == 400
    assert client.post(RUN, json={"resourceType": "Patient"}, headers=FHIR_JSON).status_code == 400
    assert client.post(RUN, content=b"x", headers={"content-type": "text/plain"}).status_code == 415


def test_an_unreadable_catalogued_view_is_an_outcome(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    app = create_app(Settings(database_url=db_url, views_dir=tmp_path), run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/fhir/ViewDefinition/broken/$viewdefinition-run")
    app.state.database.engine.dispose()
    _outcome(response, 400, "ViewDefinition")


def test_parquet_streams_row_groups(three: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="the optional parquet extra (pyarrow)")
    from fhirhub.views import output

    typed = {
        "resourceType": "ViewDefinition",
        "resource": "Patient",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "id"},
                    {"name": "active", "path": "active", "type": "boolean"},
                    {"name": "births", "path": "multipleBirth.ofType(integer)", "type": "integer"},
                    {"name": "given", "path": "name.given", "collection": True},
                ]
            }
        ],
    }
    for pid in ("d", "e", "f"):
        body = {"resourceType": "Patient", "id": pid, "active": pid != "e"}
        if pid == "f":
            body["multipleBirthInteger"] = 2
        three.put(f"/fhir/Patient/{pid}", json=body, headers=FHIR_JSON)
    monkeypatch.setattr(output, "PARQUET_ROW_GROUP", 2)  # several row groups
    answer = _run(three, _view(typed), {"name": "_format", "valueCode": "parquet"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(answer.content))
    assert table.schema.field("active").type == "bool"
    assert table.schema.field("births").type == "int64"
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert rows == [
        {"id": "a", "active": None, "births": None, "given": '["Wa Ode","Sitti"]'},
        {"id": "b", "active": None, "births": None, "given": '["La Ode"]'},
        {"id": "d", "active": True, "births": None, "given": "[]"},
        {"id": "e", "active": False, "births": None, "given": "[]"},
        {"id": "f", "active": True, "births": 2, "given": "[]"},
    ]
    assert pq.ParquetFile(io.BytesIO(answer.content)).num_row_groups == 3
    empty = _run(three, _view(typed), query="?_format=parquet&patient=nobody")  # no rows
    assert empty.status_code == 200 and pq.read_table(io.BytesIO(empty.content)).num_rows == 0


def test_parquet_without_its_library_is_415_saying_why(
    three: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    text = _outcome(_run(three, _view(), query="?_format=parquet"), 415, "_format")
    assert "parquet" in text and "fhirhub[parquet]" in text
