"""Rows a write inserts come back exactly as given, by either way a table's rows travel on
PostgreSQL: a few rows of several tables in one pipeline (one statement a table, its columns
as arrays), many by COPY. Property test over awkward values: quotes, backslashes, braces and
commas (array syntax), non-ASCII text, NULLs, integers in FLOAT columns, JSON content."""

from __future__ import annotations

import uuid
from typing import cast

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Table, delete, select, text

from fhirhub.storage.index_models import INDEX_TABLES
from fhirhub.storage.models import resources as R
from fhirhub.storage.repository import COPY_FROM_ROWS, ResourceRepository

QUANTITY = cast(Table, INDEX_TABLES["search_quantity"])
STRING = cast(Table, INDEX_TABLES["search_string"])
texts = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40
)
numbers = st.one_of(st.integers(-(10**9), 10**9), st.floats(allow_nan=False, width=32))


@st.composite
def quantity_rows(draw: st.DrawFn) -> list[dict[str, object]]:
    n = draw(st.one_of(st.integers(1, 8), st.just(COPY_FROM_ROWS + 1)))
    return [
        {
            "low": draw(numbers),
            "high": draw(numbers),
            "system": draw(st.one_of(st.none(), texts)),
            "code": draw(texts),
            "unit": draw(st.one_of(st.none(), texts)),
            "resource_pk": i + 1,
            "res_type": "Observation",
            "param": "value-quantity",
        }
        for i in range(n)
    ]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(quantities=quantity_rows(), strings=st.lists(texts, min_size=1, max_size=6))
def test_index_rows_come_back_as_written(engine: Engine, quantities, strings):
    string_rows = [
        {"value": s.lower(), "exact": s, "resource_pk": 1, "res_type": "Patient", "param": "name"}
        for s in strings
    ]
    with engine.begin() as conn:
        conn.execute(delete(QUANTITY))
        conn.execute(delete(STRING))
        ResourceRepository(conn)._insert_all([(QUANTITY, quantities), (STRING, string_rows)])
    with engine.connect() as conn:
        got_q = conn.execute(
            select(*(QUANTITY.c[k] for k in quantities[0])).order_by(QUANTITY.c.row_pk)
        ).all()
        got_s = conn.execute(select(STRING.c.value, STRING.c.exact).order_by(STRING.c.row_pk)).all()
    assert [tuple(r) for r in got_q] == [
        tuple(float(v) if k in ("low", "high") else v for k, v in r.items()) for r in quantities
    ]
    assert [tuple(r) for r in got_s] == [(r["value"], r["exact"]) for r in string_rows]


def test_json_content_and_booleans_come_back_as_written(engine: Engine):
    body = {"resourceType": "Basic", "note": 'a "quoted" \\ {brace}, comma', "n": 1.50}
    rows = [
        {
            "pk": 10**12 + i,
            "res_type": "Basic",
            "res_id": str(uuid.uuid4()),
            "version": 1,
            "last_updated": 1_700_000_000_000_000 + i,
            "deleted": i % 2 == 1,
            "content": orjson.dumps(body).decode(),
        }
        for i in range(3)
    ]
    with engine.begin() as conn:
        ResourceRepository(conn)._insert_all([(R, rows)])
    with engine.connect() as conn:
        got = conn.execute(
            text("SELECT res_id, deleted, content FROM resources WHERE res_type = 'Basic'")
        ).all()
    assert sorted((r[0], r[1]) for r in got) == sorted((r["res_id"], r["deleted"]) for r in rows)
    for _, _, content in got:
        stored = content if isinstance(content, dict) else orjson.loads(content)
        assert stored["note"] == body["note"]
