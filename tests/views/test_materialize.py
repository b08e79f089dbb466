"""``fhirhub views materialize``: a view kept as a table, refreshed from what changed only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from fhirhub.api.deps import Database
from fhirhub.views import materialize
from fhirhub.views.errors import ViewError
from fhirhub.views.materialize import refresh

VIEW: dict[str, Any] = {
    "resourceType": "ViewDefinition",
    "name": "patient_names",
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "id", "path": "id", "type": "id"},
                {"name": "active", "path": "active", "type": "boolean"},
                {"name": "births", "path": "multipleBirth.ofType(integer)", "type": "integer"},
            ]
        },
        {"forEachOrNull": "name", "column": [{"name": "family", "path": "family"}]},
    ],
}


@pytest.fixture(autouse=True)
def _drop_view_tables(engine: Engine) -> Iterator[None]:
    """The view's table is not in the migrations: gone again after each test, so the database
    matches the models for the tests that check that."""
    yield
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS view_patient_names"))


def _put(engine: Engine, *patients: dict[str, Any]) -> None:
    def work(writer: Any) -> None:
        for p in patients:
            writer.update("Patient", p["id"], {"resourceType": "Patient", **p})

    Database(engine).transact(work)


def _delete(engine: Engine, pid: str) -> None:
    Database(engine).transact(lambda writer: writer.delete("Patient", pid))


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(
            tuple(r)
            for r in conn.execute(text("SELECT id, active, births, family FROM view_patient_names"))
        )


def test_built_then_refreshed_from_changes_only(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(materialize, "OVERLAP_US", 0)  # so the count below is exact
    _put(
        engine,
        {"id": "a", "active": True, "name": [{"family": "Ode"}, {"family": "Hasan"}]},
        {"id": "b", "multipleBirthInteger": 2},
        {"id": "c", "active": False, "name": [{"family": "Sitti"}]},
    )
    first = refresh(engine, VIEW)
    assert first.rebuilt and first.resources == 3 and first.rows == 4
    assert _rows(engine) == [
        ("a", True, None, "Hasan"),
        ("a", True, None, "Ode"),
        ("b", None, 2, None),
        ("c", False, None, "Sitti"),
    ]
    _put(engine, {"id": "b", "name": [{"family": "Baru"}]}, {"id": "d", "active": True})
    _delete(engine, "c")
    second = refresh(engine, VIEW)
    assert not second.rebuilt
    assert second.resources == 3  # b, c and d: not a
    assert _rows(engine) == [
        ("a", True, None, "Hasan"),
        ("a", True, None, "Ode"),
        ("b", None, None, "Baru"),
        ("d", True, None, None),
    ]
    again = refresh(engine, VIEW)
    assert again.resources == 0 and again.rows == 4


def test_the_overlap_reads_recent_changes_again_without_duplicates(engine: Engine) -> None:
    _put(engine, {"id": "a", "active": True})
    refresh(engine, VIEW)
    again = refresh(engine, VIEW)
    assert again.resources == 1  # within the overlap: read again, replaced, not doubled
    assert _rows(engine) == [("a", True, None, None)]


def test_a_changed_definition_is_rebuilt(engine: Engine) -> None:
    _put(engine, {"id": "a", "active": True, "name": [{"family": "Ode"}]})
    refresh(engine, VIEW)
    changed = json.loads(json.dumps(VIEW))
    changed["select"][1]["column"].append({"name": "given", "path": "given", "collection": True})
    result = refresh(engine, changed)
    assert result.rebuilt
    with engine.connect() as conn:
        assert conn.execute(text("SELECT given FROM view_patient_names")).scalar_one() == "[]"


def test_a_value_of_the_wrong_type_is_refused(engine: Engine) -> None:
    _put(engine, {"id": "a", "gender": "male"})
    wrong = json.loads(json.dumps(VIEW))
    wrong["select"][0]["column"].append({"name": "g", "path": "gender", "type": "integer"})
    with pytest.raises(ViewError) as caught:
        refresh(engine, wrong)
    assert caught.value.issues[0].expression == ("ViewDefinition.select[0].column[3].type",)


def test_the_command_shows_progress_and_counts(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhirhub.cli import app
    from fhirhub.config import get_settings

    _put(engine, {"id": "a", "active": True})
    (tmp_path / "patient-names.json").write_text(json.dumps(VIEW))
    monkeypatch.setenv("FHIRHUB_DATABASE_URL", db_url)
    monkeypatch.setenv("FHIRHUB_VIEWS_DIR", str(tmp_path))
    monkeypatch.setenv("FHIRHUB_AUTO_MIGRATE", "true")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["views", "materialize", "patient-names"])
        assert result.exit_code == 0, result.output
        assert "view_patient_names: rebuilt, 1 resources read, 1 rows" in result.output
        missing = CliRunner().invoke(app, ["views", "materialize", "nope"])
        assert missing.exit_code != 0
    finally:
        get_settings.cache_clear()


def _read(engine: Engine) -> tuple[list[Any], list[Any] | None]:
    """The view's rows over the store, and as read from its table (None: not read from it)."""
    from fhirhub.views.definition import parse_view
    from fhirhub.views.sql_run import stream_rows

    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    with engine.connect() as conn:
        live = sorted(stream_rows(conn, parse_view(VIEW)), key=key)
        kept = materialize.stream_materialised(conn, VIEW)
        return live, None if kept is None else sorted(kept, key=key)


def test_rows_read_from_the_table_are_the_current_rows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(materialize, "OVERLAP_US", 0)
    _put(
        engine,
        {"id": "a", "active": True, "name": [{"family": "Ode"}, {"family": "Hasan"}]},
        {"id": "b", "multipleBirthInteger": 2},
        {"id": "c", "active": False, "name": [{"family": "Sitti"}]},
    )
    assert _read(engine)[1] is None  # never built: the caller runs the view instead
    refresh(engine, VIEW)
    live, kept = _read(engine)
    assert kept == live and len(kept) == 4
    # changed after the refresh: their rows come live, the table's old rows of them are left out
    _put(engine, {"id": "b", "name": [{"family": "Baru"}]}, {"id": "d", "active": True})
    _delete(engine, "c")
    live, kept = _read(engine)
    assert kept == live
    assert sorted((r["id"], r["family"]) for r in kept) == [
        ("a", "Hasan"),
        ("a", "Ode"),
        ("b", "Baru"),
        ("d", None),
    ]
    # a table built from another definition is not read
    with engine.begin() as conn:
        conn.execute(text("UPDATE view_watermarks SET definition_sha256 = 'x'"))
    assert _read(engine)[1] is None


def test_within_the_overlap_rows_come_live(engine: Engine) -> None:
    """With the default overlap every resource just written is read live, not from the table;
    the rows are the same."""
    _put(engine, {"id": "a", "active": True, "name": [{"family": "Ode"}]})
    refresh(engine, VIEW)
    live, kept = _read(engine)
    assert kept == live and len(live) == 1


def test_a_streamed_read_plans_for_every_row(engine: Engine) -> None:
    """On PostgreSQL a view's rows stream through a cursor; the planner is told every row will
    be read (a plan for the first tenth found 30,000 changed Persons of 5.5 million resources by
    reading the whole table), and JIT is off."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL settings")
    _put(engine, {"id": "a", "active": True})
    refresh(engine, VIEW)
    _put(engine, {"id": "b", "active": False})  # changed since: run live beside the table
    with engine.connect() as conn:
        kept = materialize.stream_materialised(conn, VIEW)
        assert kept is not None
        assert sorted(r["id"] for r in kept) == ["a", "b"]
        assert conn.execute(text("SHOW cursor_tuple_fraction")).scalar_one() == "1"
        assert conn.execute(text("SHOW jit")).scalar_one() == "off"
    with engine.connect() as conn:  # for that transaction only
        assert conn.execute(text("SHOW cursor_tuple_fraction")).scalar_one() == "0.1"


def test_a_table_read_as_tuples_stopped_early_leaves_the_connection_usable(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows come as tuples in the order of the names given with them; on PostgreSQL the
    next batches are fetched ahead by a thread, which a reader that stops early must not leave
    holding the connection."""
    monkeypatch.setattr(materialize, "OVERLAP_US", 0)
    _put(engine, *({"id": f"p{i}", "active": i % 2 == 0} for i in range(7)))
    refresh(engine, VIEW)
    with engine.connect() as conn:
        found = materialize.stream_materialised_tuples(conn, VIEW, batch=2)
        assert found is not None
        names, rows = found
        assert names == ["id", "active", "births", "family"]
        every = sorted(rows)
        assert every == sorted((f"p{i}", i % 2 == 0, None, None) for i in range(7))
        found = materialize.stream_materialised_tuples(conn, VIEW, batch=2)
        assert found is not None
        first = next(found[1])
        assert len(first) == 4
        found[1].close()  # stopped after one row of four batches
        assert conn.execute(text("SELECT count(*) FROM view_patient_names")).scalar_one() == 7
        if engine.dialect.name != "postgresql":
            return  # SQLite registers the views' functions only with no statement running
        # two reads at once on one connection: each its own cursor
        one = materialize.stream_materialised_tuples(conn, VIEW, batch=2)
        two = materialize.stream_materialised_tuples(conn, VIEW, batch=3)
        assert one is not None and two is not None
        pairs = list(zip(one[1], two[1], strict=True))
        assert sorted(a for a, _ in pairs) == sorted(b for _, b in pairs) == every
