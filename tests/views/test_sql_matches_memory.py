"""The SQL compiler gives the in-memory runner's rows: Hypothesis makes Patients, a set of views
that use what the compiler translates runs both ways, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from fhirhub.api.deps import Database
from fhirhub.views.definition import parse_view
from fhirhub.views.errors import ViewError
from fhirhub.views.run import run_view
from fhirhub.views.sql_run import Scope, plan, stream_rows

_words = st.sampled_from(["Ani", "Budi", "La Ode", "Wa Ode", "Sitti", "2020", "2020-01", ""])
_codes = st.sampled_from(["official", "usual", "maiden", "nickname"])
_name = st.fixed_dictionaries(
    {},
    optional={
        "use": _codes,
        "family": _words.filter(bool),
        "given": st.lists(_words.filter(bool), min_size=1, max_size=3),
        "period": st.fixed_dictionaries(
            {
                "start": st.sampled_from(
                    [
                        "2020-01-01T10:00:00Z",
                        "2020-01-01T17:00:00+07:00",
                        "2020-01-01T09:59:59.5Z",
                        "2020-01-01T10:00:00",
                        "2020-01-01T10:00",
                        "2020-01",
                    ]
                )
            }
        ),
    },
)
_telecom = st.fixed_dictionaries(
    {"system": st.sampled_from(["phone", "email"])}, optional={"value": _words.filter(bool)}
)
_link = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["seealso", "refer"]),
        "other": st.fixed_dictionaries(
            {
                "reference": st.sampled_from(
                    [
                        "Patient/p0",
                        "Patient/p1",
                        "RelatedPerson/r1",
                        "http://x.org/fhir/Patient/p2",
                        "Patient/p1/_history/2",
                        "#contained",
                        "urn:uuid:1234",
                    ]
                )
            }
        ),
    }
)
_extension = st.one_of(
    st.fixed_dictionaries(
        {"url": st.sampled_from(["http://e/a", "http://e/b"]), "valueCode": _codes}
    ),
    st.fixed_dictionaries(
        {"url": st.sampled_from(["http://e/a", "http://e/b"]), "valueString": _words.filter(bool)}
    ),
)
_patient = st.fixed_dictionaries(
    {"resourceType": st.just("Patient")},
    optional={
        "gender": st.sampled_from(["male", "female", "unknown"]),
        "active": st.booleans(),
        "birthDate": st.sampled_from(["1990", "1990-05", "1990-05-17"]),
        "deceasedBoolean": st.booleans(),
        "name": st.lists(_name.filter(bool), min_size=1, max_size=3),
        "telecom": st.lists(_telecom, min_size=1, max_size=3),
        "link": st.lists(_link, min_size=1, max_size=2),
        "extension": st.lists(_extension, min_size=1, max_size=3),
        "contact": st.lists(
            st.fixed_dictionaries(
                {}, optional={"telecom": st.lists(_telecom, min_size=1, max_size=2)}
            ),
            min_size=1,
            max_size=2,
        ),
    },
)


def _col(name: str, path: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "path": path, **more}


VIEWS: list[dict[str, Any]] = [
    {
        "select": [
            {
                "column": [
                    _col("id", "id"),
                    _col("g", "gender"),
                    _col("a", "active"),
                    _col("b", "birthDate"),
                    _col("d", "deceased.ofType(boolean)"),
                ]
            }
        ]
    },
    {
        "select": [
            {
                "column": [
                    _col("id", "getResourceKey()"),
                    _col("fam", "name.family", collection=True),
                    _col("first", "name.first().given.first()"),
                    _col("joined", "name.given.join(', ')"),
                    _col("n1", "name[1].family"),
                    _col("has", "name.exists()"),
                    _col("none", "name.empty()"),
                    _col("off", "name.where(use = 'official').exists()"),
                    _col("notmale", "(gender = 'male').not()"),
                ]
            }
        ]
    },
    {
        "select": [
            {"column": [_col("id", "id")]},
            {
                "forEach": "name",
                "column": [
                    _col("i", "%rowIndex"),
                    _col("use", "use"),
                    _col("given", "given", collection=True),
                ],
                "select": [
                    {
                        "forEachOrNull": "given",
                        "column": [_col("gv", "$this"), _col("gi", "%rowIndex")],
                    }
                ],
            },
        ]
    },
    {
        "select": [
            {"column": [_col("id", "id")]},
            {
                "forEachOrNull": "contact",
                "column": [_col("ci", "%rowIndex")],
                "unionAll": [
                    {"forEach": "telecom", "column": [_col("sys", "system"), _col("k", "'t'")]},
                    {
                        "forEachOrNull": "telecom.where(system = 'email')",
                        "column": [_col("sys", "value"), _col("k", "'e'")],
                    },
                ],
            },
        ]
    },
    {
        "select": [
            {
                "column": [
                    _col("id", "id"),
                    _col("ref", "link.other.getReferenceKey()", collection=True),
                    _col("pat", "link.other.getReferenceKey(Patient)", collection=True),
                    _col("ext", "extension('http://e/a').value.ofType(code)", collection=True),
                ]
            }
        ],
        "where": [{"path": "name.exists() or gender = 'female'"}],
    },
    {
        "constant": [
            {"name": "bd", "valueDate": "1990-05"},
            {"name": "t", "valueDateTime": "2020-01-01T10:00:00+00:00"},
        ],
        "select": [
            {
                "column": [
                    _col("id", "id"),
                    _col("eq", "birthDate = %bd"),
                    _col("lt", "birthDate < @1990-05-17"),
                    _col("ge", "birthDate >= @1990"),
                    _col("ne", "birthDate != @1990-05-17"),
                ]
            },
            {
                "forEach": "name",
                "column": [
                    _col("at", "period.start = %t"),
                    _col("before", "period.start < @2020-01-01T10:00:00Z"),
                    _col("naive", "period.start > @2020-01-01T09:00:00"),
                ],
            },
        ],
    },
    {
        "constant": [{"name": "u", "valueCode": "official"}, {"name": "i", "valueInteger": 0}],
        "select": [
            {
                "column": [
                    _col("id", "id"),
                    _col("f", "name.where(use = %u).family", collection=True),
                    _col("t", "telecom[%i].system"),
                ]
            }
        ],
    },
]


def _canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


@pytest.mark.parametrize("index", range(len(VIEWS)))
def test_every_view_here_compiles(index: int) -> None:
    view = parse_view({"resource": "Patient", **VIEWS[index]})
    for dialect in ("sqlite", "postgresql"):
        assert plan(view, dialect).compiled is not None, plan(view, dialect).reason


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(patients=st.lists(_patient, min_size=1, max_size=4))
def test_sql_rows_equal_memory_rows(engine: Engine, patients: list[dict[str, Any]]) -> None:
    resources = [{**p, "id": f"p{i}"} for i, p in enumerate(patients)]
    with engine.begin() as conn:
        # (and the patient index's rows of the records deleted under its feet)
        for table in ("resources", "resource_versions", "search_reference", "mpi_blocks",
                      "mpi_records"):  # fmt: skip
            conn.execute(text(f"DELETE FROM {table}"))

    def store(writer: Any) -> None:
        for r in resources:
            writer.update("Patient", r["id"], r, validated=True)

    Database(engine).transact(store)
    for data in VIEWS:
        view = parse_view({"resource": "Patient", **data})
        try:
            expected: list[dict[str, Any]] | str = _canonical(list(run_view(view, resources)))
        except ViewError as exc:
            expected = exc.issues[0].expression[0]
        with engine.connect() as conn:
            try:
                got: list[dict[str, Any]] | str = _canonical(list(stream_rows(conn, view, Scope())))
            except ViewError as exc:
                got = exc.issues[0].expression[0]
        assert got == expected, data
